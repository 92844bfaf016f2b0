// The shared conformance vectors (tests/vectors/*.json): the same files Rust and Python run,
// run here through the built npm package. Format: tests/vectors/README.md.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Engine, KeyRecord, UserRecord, KeycelError } from 'keycel';
import { REPO } from './helpers.mjs';

const DIR = path.join(REPO, 'tests', 'vectors');
const files = fs.existsSync(DIR) ? fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort() : [];

test('conformance vectors exist', () => {
  assert.ok(files.length > 0, `no conformance vectors (*.json) in ${DIR}: nothing to check the WASM package against`);
});

/** Runs one case the way the core's `Engine::authorize(headers, request, lookup, now)` does. */
function authorize(engine, keys, users, headers, request, now) {
  let credentials;
  try {
    credentials = engine.parseCredentials(headers);
  } catch (e) {
    if (e instanceof KeycelError && e.decision) return e.decision;
    throw e;
  }
  try {
    const record = keys.get(credentials.clientId) ?? null;
    const user = record && record.user ? users.get(record.user) ?? null : null;
    return engine.authorize(record, credentials, request, now, user);
  } finally {
    credentials.free();
  }
}

const subset = (expected, actual) => {
  for (const [name, value] of Object.entries(expected)) {
    const found = Object.entries(actual).find(([k]) => k.toLowerCase() === name.toLowerCase());
    assert.ok(found, `header ${name} missing from ${JSON.stringify(actual)}`);
    assert.equal(found[1], value, `header ${name}`);
  }
};

for (const file of files) {
  const vector = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
  test(`vector ${file}: ${vector.description ?? ''}`, async (t) => {
    assert.ok(Array.isArray(vector.cases) && vector.cases.length > 0, 'a vector file needs cases');
    const engine = new Engine(fs.readFileSync(path.join(REPO, vector.policy), 'utf8'), { origin: vector.policy });
    const keys = new Map((vector.keys ?? []).map((k) => [k.id, KeyRecord.parse(k)]));
    const users = new Map((vector.users ?? []).map((u) => [u.id, UserRecord.parse(u)]));
    for (const c of vector.cases) {
      await t.test(c.name, () => {
        const now = c.now ?? vector.now;
        const held = [];
        try {
          for (let i = 0; i < (c.in_flight ?? 0); i++) {
            const d = authorize(engine, keys, users, c.headers, c.request, now);
            assert.equal(d.allowed, true, `in-flight request ${i} must be allowed: ${d.reason}`);
            if (d.lease) held.push(d.lease); // management checks take none
          }
          const d = authorize(engine, keys, users, c.headers, c.request, now);
          if (d.lease) held.push(d.lease);
          const e = c.expect;
          const ctx = `${file} / ${c.name}: ${d.reason}`;
          assert.equal(d.allowed, e.allowed, ctx);
          assert.equal(d.status, e.status, ctx);
          if ('code' in e) assert.equal(d.code, e.code, ctx);
          if ('message' in e) assert.equal(d.message, e.message, ctx);
          if ('key_id' in e) assert.equal(d.keyId, e.key_id, ctx);
          if ('matched_rules' in e) assert.deepEqual(d.matchedRules, e.matched_rules, ctx);
          if (e.headers) subset(e.headers, d.headers);
        } finally {
          for (const l of held) l.release();
        }
      });
    }
  });
}

// Management cases (issue 11). The WASM package manages keys through `issueKey` and
// `rotateKey` (the host stores records itself), so it runs the `create` and `rotate` cases;
// the other operations have no WASM API. The acting key is passed as `{ key, user }`, the
// records as the host's store holds them; the core keyring judges them like everywhere else.
const CHEAP = { mCost: 1024, tCost: 1, pCost: 1 };

function outcome(call) {
  try {
    call();
  } catch (e) {
    if (!(e instanceof KeycelError)) throw e;
    if (e.code === 'denied') return { ok: false, error: 'denied', status: e.status, code: e.decision?.code ?? null };
    if (e.code === 'not_found') return { ok: false, error: 'not_found', status: null, code: null };
    if (e.code === 'invalid_record') return { ok: false, error: 'invalid', status: null, code: null };
    throw e;
  }
  return { ok: true, error: null, status: null, code: null };
}

for (const file of files) {
  const vector = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
  const cases = (vector.management ?? []).filter((c) => c.op === 'create' || c.op === 'rotate');
  if (cases.length === 0) continue;
  test(`management vector ${file}`, async (t) => {
    const engine = new Engine(fs.readFileSync(path.join(REPO, vector.policy), 'utf8'), { origin: vector.policy });
    const keyJson = (label) => vector.keys.find((k) => k.id === vector.tokens[label].client_id);
    const userJson = (id) => (vector.users ?? []).find((u) => u.id === id);
    for (const c of cases) {
      await t.test(c.name, () => {
        const now = c.now ?? vector.now;
        const options = { hash: CHEAP };
        if (c.actor !== 'operator') {
          const key = keyJson(c.actor);
          const user = key.user ? userJson(key.user) : undefined;
          options.actor = user ? { key, user } : { key };
        }
        let call;
        if (c.op === 'create') {
          const k = c.key;
          const spec = { name: 'vector', kind: k.kind, role: k.role, scopes: k.scopes ?? [], accounts: k.accounts };
          if (k.user) spec.user = k.user;
          if (k.expires_in != null) spec.expiresIn = k.expires_in;
          if (k.max_concurrent != null) spec.maxConcurrent = k.max_concurrent;
          if (k.user && userJson(k.user)) options.owner = userJson(k.user);
          call = () => engine.issueKey(spec, now, options);
        } else {
          const target = keyJson(c.target);
          if (target.user && userJson(target.user)) options.owner = userJson(target.user);
          call = () => engine.rotateKey(KeyRecord.parse(target), now, options);
        }
        assert.deepEqual(outcome(call), c.expect, `${file} / ${c.name}`);
      });
    }
  });
}

test('management vectors ran', { skip: files.length === 0 }, () => {
  const any = files.some((f) => (JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')).management ?? []).length > 0);
  assert.ok(any, 'no management cases in the vectors: delegation is unchecked in WASM');
});
