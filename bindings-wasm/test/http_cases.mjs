// Runs the shared HTTP cases (tests/http_cases/cases.json) against a server on 127.0.0.1:
// the same file the Python (Django, Flask) and Rust (axum) integrations run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { REPO, basic } from './helpers.mjs';

export const CASES = JSON.parse(fs.readFileSync(path.join(REPO, 'tests', 'http_cases', 'cases.json'), 'utf8'));
if (!CASES.scenarios || CASES.scenarios.length === 0) throw new Error('tests/http_cases/cases.json: no scenarios');

/** Issues the cases' keys: `{ label: { clientId, token, secret, recordJson } }`. */
export function issueKeys(engine, hash) {
  const keys = {};
  for (const [label, spec] of Object.entries(CASES.keys)) {
    const issued = engine.issueKey({ name: label, role: spec.role, accounts: spec.accounts, maxConcurrent: spec.max_concurrent ?? undefined },
      Date.now(), { hash });
    keys[label] = { clientId: issued.clientId, token: issued.token, secret: issued.token.slice(issued.clientId.length + 1), recordJson: issued.recordJson };
  }
  return keys;
}

function authHeaders(auth, keys) {
  if (auth.form === 'none') return {};
  if (auth.form === 'raw') return { ...auth.headers };
  const k = keys[auth.key];
  const pair = { 'x-keycel-client-id': k.clientId, 'x-keycel-secret-key': k.secret };
  switch (auth.form) {
    case 'bearer': return { authorization: `Bearer ${k.token}` };
    case 'basic_token': return { authorization: basic(k.token, '') };
    case 'basic_pair': return { authorization: basic(k.clientId, k.secret) };
    case 'header_pair': return pair;
    case 'wrong_secret': {
      const i = k.token.length - 12;
      return { authorization: `Bearer ${k.token.slice(0, i)}${k.token[i] === 'x' ? 'y' : 'x'}${k.token.slice(i + 1)}` };
    }
    case 'two_methods': return { authorization: `Bearer ${k.token}`, ...pair };
    default: throw new Error(`unknown credential form ${auth.form}`);
  }
}

function substitute(value, keys) {
  if (Array.isArray(value)) return value.map((v) => substitute(v, keys));
  if (value && typeof value === 'object') {
    const names = Object.keys(value);
    if (names.length === 1 && names[0] === '$key_id') return keys[value.$key_id].clientId;
    return Object.fromEntries(names.map((n) => [n, substitute(value[n], keys)]));
  }
  return value;
}

async function check(where, r, expect, keys, saved) {
  const body = await r.text();
  assert.equal(r.status, expect.status, `${where}: status ${r.status}, body ${body}`);
  if ('body' in expect) assert.equal(body, expect.body, `${where}: body`);
  if ('json' in expect) assert.deepEqual(JSON.parse(body), substitute(expect.json, keys), `${where}: json ${body}`);
  for (const [name, value] of Object.entries(expect.headers ?? {})) assert.equal(r.headers.get(name), value, `${where}: header ${name}`);
  for (const [name, part] of Object.entries(expect.header_contains ?? {})) {
    assert.ok((r.headers.get(name) ?? '').includes(part), `${where}: header ${name}: ${r.headers.get(name)}`);
  }
  if ('same_as' in expect) {
    const other = saved[expect.same_as];
    assert.equal(body, other.body, `${where}: body differs from ${expect.same_as}`);
    assert.equal(r.headers.get('content-type'), other.type, `${where}: content-type differs from ${expect.same_as}`);
  }
  return { body, type: r.headers.get('content-type') };
}

/** Runs one scenario against `base` (e.g. http://127.0.0.1:1234). */
export async function run(base, scenario, keys) {
  const saved = {};
  let stream = null;
  let first = '';
  const decoder = new TextDecoder();
  const go = (p, init) => fetch(`${base}${p}`, { signal: AbortSignal.timeout(20_000), ...init });
  try {
    for (const [i, step] of scenario.steps.entries()) {
      const where = `${scenario.name} / step ${i} (${step.do})`;
      if (step.do === 'request') {
        const r = await go(step.path, { method: step.method, headers: authHeaders(step.auth, keys) });
        const got = await check(where, r, step.expect, keys, saved);
        if (step.save_as) saved[step.save_as] = got;
      } else if (step.do === 'open_stream') {
        const r = await go(step.path, { headers: authHeaders(step.auth, keys) });
        assert.equal(r.status, 200, where);
        stream = r.body.getReader();
        const { value } = await stream.read();
        first = decoder.decode(value);
        assert.ok(first.length > 0, where);
      } else if (step.do === 'finish_stream') {
        let rest = '';
        for (;;) {
          const { done, value } = await stream.read();
          if (done) break;
          rest += decoder.decode(value);
        }
        stream = null;
        assert.equal(first + rest, step.body, where);
      } else if (step.do === 'abort_stream') {
        await stream.cancel(); // unread: the connection is dropped
        stream = null;
      } else if (step.do === 'in_flight') {
        const id = keys[step.key].clientId;
        const deadline = Date.now() + 5000;
        for (;;) {
          const n = (await (await go(`/_inflight/${id}`)).json()).in_flight;
          if (n === step.n) break;
          assert.ok(Date.now() < deadline, `${where}: ${n} leases in flight, expected ${step.n}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      } else {
        throw new Error(`${where}: unknown step kind`);
      }
    }
  } finally {
    if (stream) await stream.cancel().catch(() => {});
  }
}

export const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

/** Starts `cmd` (PORT in env and argv replaced) and waits for GET /health. */
export async function startServer(cmd, args, env, cwd) {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    let log = '';
    const proc = spawn(cmd, args.map((a) => a.replace('PORT', String(port))),
      { cwd, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.on('data', (d) => { log += d; });
    proc.stderr.on('data', (d) => { log += d; });
    const deadline = Date.now() + 30_000;
    try {
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`${cmd} exited (${proc.exitCode}):\n${log}`);
        try {
          if ((await fetch(`${base}/health`, { signal: AbortSignal.timeout(1000) })).ok) {
            return { base, proc, log: () => log, stop: () => { if (proc.exitCode === null) proc.kill('SIGTERM'); } };
          }
        } catch { /* not listening yet */ }
        if (Date.now() > deadline) throw new Error(`${cmd} did not become ready:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (e) {
      proc.kill('SIGKILL');
      if (attempt === 2 || !/address already in use/i.test(log)) throw e;
    }
  }
}
