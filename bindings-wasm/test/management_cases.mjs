// Runs the shared management HTTP cases (tests/http_cases/management.json, format in
// tests/http_cases/README.md; the Rust and Python runners read the same file) against
// anything that answers fetch Requests: the fetch handler called directly in Node, or a
// server on 127.0.0.1 (workerd).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, basic } from './helpers.mjs';

export const MGMT = JSON.parse(fs.readFileSync(path.join(REPO, 'tests', 'http_cases', 'management.json'), 'utf8'));
if (!MGMT.scenarios || MGMT.scenarios.length < 8) throw new Error('tests/http_cases/management.json: too few scenarios');

/** The cases' users and keys as specs a Keyring (or the worker's seed route) creates. */
export function worldSpecs() {
  const users = Object.entries(MGMT.users).map(([id, u]) => ({ id, roles: u.roles, accounts: u.accounts }));
  const keys = Object.entries(MGMT.keys).map(([label, k]) => ({
    label,
    spec: { name: label, role: k.role, accounts: k.accounts, kind: k.kind ?? 'api', user: k.user ?? undefined },
  }));
  return { users, keys };
}

/** Creates the world with `ring` (operator); returns `{ label: { id, secret, token } }`. */
export async function seedWorld(ring, now) {
  const { users, keys } = worldSpecs();
  for (const u of users) await ring.putUser(u, { now });
  const out = {};
  for (const { label, spec } of keys) {
    const k = await ring.create(spec, { now });
    out[label] = { id: k.clientId, secret: k.secretKey, token: k.token };
  }
  return out;
}

function lookup(saved, p) {
  const [name, ...rest] = p.split('.');
  assert.ok(name in saved, `nothing saved as ${name}`);
  let v = saved[name].json;
  for (const part of rest) v = v == null ? undefined : v[part];
  return v;
}

function template(s, keys, saved) {
  return s.replace(/\{(id|saved):([^}]+)\}/g, (_, kind, ref) => (kind === 'id' ? keys[ref].id : String(lookup(saved, ref))));
}

function credOf(auth, keys, saved) {
  if (auth.key) return keys[auth.key];
  const s = saved[auth.saved].json.secret;
  return { id: s.client_id, secret: s.secret_key, token: s.token };
}

function authHeaders(auth, keys, saved) {
  if (!auth || auth.form === 'none') return {};
  const c = credOf(auth, keys, saved);
  switch (auth.form) {
    case 'bearer': return { authorization: `Bearer ${c.token}` };
    case 'basic_token': return { authorization: basic(c.token, '') };
    case 'basic_pair': return { authorization: basic(c.id, c.secret) };
    case 'header_pair': return { 'x-keycel-client-id': c.id, 'x-keycel-secret-key': c.secret };
    case 'wrong_secret': {
      const i = c.token.length - 12;
      return { authorization: `Bearer ${c.token.slice(0, i)}${c.token[i] === 'x' ? 'y' : 'x'}${c.token.slice(i + 1)}` };
    }
    default: throw new Error(`unknown credential form ${auth.form}`);
  }
}

/** `expected` is a subset of `actual` ($key_id, $saved, $type as in the Rust runner). */
function matches(expected, actual, keys, saved) {
  if (expected && typeof expected === 'object' && !Array.isArray(expected)) {
    const names = Object.keys(expected);
    if (names.length === 1 && names[0] === '$key_id') return actual === keys[expected.$key_id].id;
    if (names.length === 1 && names[0] === '$saved') return JSON.stringify(actual) === JSON.stringify(lookup(saved, expected.$saved));
    if (names.length === 1 && names[0] === '$type') return typeof actual === expected.$type;
    return actual !== null && typeof actual === 'object' && names.every((n) => n in actual && matches(expected[n], actual[n], keys, saved));
  }
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => matches(e, actual[i], keys, saved));
  }
  return expected === actual;
}

/**
 * Runs every scenario; `send(method, path, headers, body)` returns a fetch Response. Every
 * body is also checked for `$argon2` (no answer ever carries a hash).
 */
export async function runManagementCases(send, keys) {
  let requests = 0;
  for (const scenario of MGMT.scenarios) {
    const saved = {};
    for (const [i, step] of scenario.steps.entries()) {
      const where = `${scenario.name} / step ${i}`;
      assert.equal(step.do, 'request', where);
      const headers = { ...authHeaders(step.auth, keys, saved), ...(step.headers ?? {}) };
      let body;
      if ('body' in step) {
        body = JSON.stringify(step.body);
        headers['content-type'] = 'application/json';
      }
      if ('raw_body' in step) body = step.raw_body;
      const r = await send(step.method, template(step.path, keys, saved), headers, body);
      requests++;
      const text = await r.text();
      assert.ok(!text.includes('$argon2'), `${where}: a body carries a hash: ${text}`);
      let json = null;
      try {
        json = JSON.parse(text);
      } catch { /* not JSON */ }
      if (step.save_as) saved[step.save_as] = { text, json, type: r.headers.get('content-type') };
      const expect = step.expect;
      assert.equal(r.status, expect.status, `${where}: status ${r.status}, body ${text}`);
      if ('body' in expect) assert.equal(text, expect.body, where);
      if ('json_has' in expect) assert.ok(matches(expect.json_has, json, keys, saved), `${where}: ${text} does not match ${JSON.stringify(expect.json_has)}`);
      for (const [k, n] of Object.entries(expect.json_len ?? {})) assert.equal(json[k].length, n, `${where}: ${k} in ${text}`);
      for (const [name, value] of Object.entries(expect.headers ?? {})) assert.equal(r.headers.get(name), value, `${where}: header ${name}`);
      for (const [name, part] of Object.entries(expect.header_contains ?? {})) {
        assert.ok((r.headers.get(name) ?? '').includes(part), `${where}: header ${name}: ${r.headers.get(name)}`);
      }
      for (const part of expect.body_contains ?? []) assert.ok(text.includes(template(part, keys, saved)), `${where}: ${part} not in ${text}`);
      for (const part of expect.body_excludes ?? []) assert.ok(!text.includes(template(part, keys, saved)), `${where}: ${part} in ${text}`);
      if ('same_as' in expect) {
        assert.equal(text, saved[expect.same_as].text, `${where}: differs from ${expect.same_as}`);
        assert.equal(r.headers.get('content-type'), saved[expect.same_as].type, where);
      }
    }
  }
  return requests;
}
