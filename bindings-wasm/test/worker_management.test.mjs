// The management API in a real edge runtime: the example worker in workerd on 127.0.0.1,
// keys in a Durable Object's storage (examples/worker/keystore.mjs), driven over real HTTP
// with the shared cases (tests/http_cases/management.json) and the scenarios.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HERE } from './helpers.mjs';
import { freePort } from './http_cases.mjs';
import { runManagementCases, worldSpecs } from './management_cases.mjs';

const ROOT = path.resolve(HERE, '..');
const WORKERD = path.join(ROOT, 'node_modules', '.bin', 'workerd');
const ADMIN = 'test-admin-token';
let proc;
let base;
let log = '';

async function waitReady(deadline) {
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`workerd exited (${proc.exitCode}):\n${log}`);
    try {
      if ((await fetch(`${base}/health`, { signal: AbortSignal.timeout(1000) })).ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`workerd did not become ready:\n${log}`);
}

const send = (method, p, headers, body) =>
  fetch(`${base}/manage${p}`, { method, headers, body, signal: AbortSignal.timeout(30_000) });

describe('workerd: management API over Durable Object storage', () => {
  before(async () => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      log = '';
      proc = spawn(WORKERD, ['serve', path.join(ROOT, 'examples', 'worker', 'config.capnp'), '--socket-addr', `http=127.0.0.1:${port}`],
        { cwd: ROOT, env: { ...process.env, KEYCEL_ADMIN_TOKEN: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout.on('data', (d) => { log += d; });
      proc.stderr.on('data', (d) => { log += d; });
      try {
        await waitReady(Date.now() + 30_000);
        return;
      } catch (e) {
        proc.kill('SIGKILL');
        if (attempt === 2 || !/address already in use/i.test(log)) throw e;
      }
    }
  });
  after(() => {
    if (proc && proc.exitCode === null) proc.kill('SIGTERM');
  });

  test('shared management HTTP cases (admin creates, viewer refused an API token, account scope, rotation, no hash)', async () => {
    const r = await fetch(`${base}/_mgmt/seed`, { method: 'POST', headers: { 'x-admin-token': ADMIN }, body: JSON.stringify(worldSpecs()) });
    assert.equal(r.status, 201, await r.clone().text());
    const keys = await r.json();
    const n = await runManagementCases(send, keys);
    assert.ok(n >= 30, `${n} requests`);
    assert.ok(!/uncaught|panicked|unreachable/i.test(log), log);
  });

  test('the keys persist in the Durable Object: a key made over HTTP manages on the next request', async () => {
    const seed = await fetch(`${base}/_mgmt/seed`, { method: 'POST', headers: { 'x-admin-token': ADMIN },
      body: JSON.stringify({ keys: [{ label: 'boss', spec: { name: 'boss', role: 'admin' } }] }) });
    const { boss } = await seed.json();
    const made = await send('POST', '/keys', { authorization: `Bearer ${boss.token}`, 'content-type': 'application/json' },
      JSON.stringify({ name: 'made in DO', role: 'admin' }));
    assert.equal(made.status, 201);
    const { secret } = await made.json();
    const listed = await send('GET', '/keys?limit=500', { authorization: `Bearer ${secret.token}` });
    const text = await listed.text();
    assert.equal(listed.status, 200, text);
    assert.ok(text.includes(boss.id) && text.includes(secret.client_id));
    assert.ok(!text.includes('$argon2'));
    const unauth = await fetch(`${base}/_mgmt/seed`, { method: 'POST', body: '{}' });
    assert.equal(unauth.status, 401);
  });
});
