// A real edge runtime: the example worker (examples/worker/) in workerd on 127.0.0.1,
// driven with real HTTP requests. The worker imports the built web package and the .wasm
// as a module and calls initSync({ module }).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HERE, basic } from './helpers.mjs';

const ROOT = path.resolve(HERE, '..');
const WORKERD = path.join(ROOT, 'node_modules', '.bin', 'workerd');
const ADMIN = 'test-admin-token';
let proc;
let base;
let log = '';

const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

async function waitReady(deadline) {
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`workerd exited (${proc.exitCode}):\n${log}`);
    try {
      const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`workerd did not become ready:\n${log}`);
}

const get = (p, headers = {}, init = {}) => fetch(`${base}${p}`, { headers, signal: AbortSignal.timeout(15_000), ...init });

async function issue(spec, owner) {
  const r = await get('/_keys', { 'x-admin-token': ADMIN, 'content-type': 'application/json' },
    { method: 'POST', body: JSON.stringify({ spec, owner }) });
  assert.equal(r.status, 201, await r.clone().text());
  return r.json();
}

describe('workerd example worker', () => {
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

  test('Bearer, Basic (key as user, or client id + secret) and the header pair', async () => {
    const k = await issue({ name: 'edge', role: 'reader', accounts: ['acc_1'] });
    const forms = [
      [{ authorization: `Bearer ${k.token}` }, 'bearer'],
      [{ authorization: basic(`${k.token}:`) }, 'basic'],
      [{ authorization: basic(k.clientId, k.secretKey) }, 'basic'],
      [{ 'x-keycel-client-id': k.clientId, 'x-keycel-secret-key': k.secretKey }, 'header_pair'],
    ];
    let hits = 0;
    for (const [headers, method] of forms) {
      const r = await get('/v1/accounts/acc_1/reports', headers);
      assert.equal(r.status, 200);
      const body = await r.json();
      assert.equal(body.keyId, k.clientId);
      assert.equal(body.method, method);
      assert.deepEqual(body.rules, ['scope-grants-action']);
      if (body.cacheHit) hits++;
    }
    assert.ok(hits >= 3, 'a warm isolate skips argon2 (verified-secret cache in the engine)');
  });

  test('401 missing, 401 invalid, 400 two methods', async () => {
    let r = await get('/v1/accounts/acc_1/reports');
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /Basic realm="keycel", Bearer realm="keycel"/);
    r = await get('/v1/accounts/acc_1/reports', { authorization: basic('kc_0000000000000000_00000000000000000000000000000000000000:') });
    assert.equal(r.status, 401);
    assert.deepEqual(await r.json(), { error: 'invalid_token', message: 'Invalid username/account key' });
    const k = await issue({ name: 'gone', role: 'reader' });
    const del = await get(`/_records/${k.clientId}`, { 'x-admin-token': ADMIN }, { method: 'DELETE' });
    assert.deepEqual(await del.json(), { deleted: true });
    r = await get('/v1/accounts/acc_1/reports', { authorization: `Bearer ${k.token}` });
    assert.equal(r.status, 401, 'unknown client id');
    assert.deepEqual(await r.json(), { error: 'invalid_token', message: 'Invalid username/account key' });
    const k2 = await issue({ name: 'two', role: 'reader' });
    r = await get('/v1/accounts/acc_1/reports', { authorization: `Bearer ${k2.token}`, 'x-keycel-client-id': k2.clientId, 'x-keycel-secret-key': k2.secretKey });
    assert.equal(r.status, 400);
  });

  test('403 insufficient scope and admin scopes outside /admin', async () => {
    const k = await issue({ name: 'ro', role: 'reader' });
    let r = await get('/v1/accounts/acc_1/reports', { authorization: `Bearer ${k.token}` }, { method: 'POST', body: '{}' });
    assert.equal(r.status, 403);
    assert.match(r.headers.get('www-authenticate'), /error="insufficient_scope"/);
    const a = await issue({ name: 'adm', role: 'admin' });
    r = await get('/admin/account/create', { authorization: basic(`${a.token}:`) }, { method: 'POST', body: '{}' });
    assert.equal(r.status, 200);
  });

  test('404 outside the key\'s account scope, byte-identical to a missing resource', async () => {
    const k = await issue({ name: 'scoped', role: 'reader', accounts: ['acc_1'] });
    const denied = await get('/v1/accounts/acc_2/reports', { authorization: `Bearer ${k.token}` });
    const missing = await get('/no/such/route', { authorization: `Bearer ${k.token}` });
    assert.equal(denied.status, 404);
    assert.equal(missing.status, 404);
    assert.equal(await denied.text(), await missing.text());
  });

  test('429 past five requests in flight, with Retry-After; slots come back', async () => {
    const k = await issue({ name: 'busy', role: 'reader' });
    const h = { authorization: `Bearer ${k.token}` };
    const slow = Array.from({ length: 5 }, () => get('/v1/accounts/acc_1/reports?hold=4000', h));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const n = (await (await get(`/_inflight/${k.clientId}`)).json()).in_flight;
      if (n === 5) break;
      assert.ok(Date.now() < deadline, `only ${n} requests in flight`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const busy = await get('/v1/accounts/acc_1/reports', h);
    assert.equal(busy.status, 429);
    assert.equal(busy.headers.get('retry-after'), '1');
    assert.equal((await busy.json()).error, 'too_many_requests');
    for (const r of await Promise.all(slow)) assert.equal(r.status, 200);
    assert.equal((await (await get(`/_inflight/${k.clientId}`)).json()).in_flight, 0, 'every lease released');
    assert.equal((await get('/v1/accounts/acc_1/reports', h)).status, 200);
  });

  test('personal tokens follow their user', async () => {
    const owner = { id: 'u_edge', roles: ['editor'], accounts: 'all' };
    const put = await get('/_users/u_edge', { 'x-admin-token': ADMIN }, { method: 'PUT', body: JSON.stringify(owner) });
    assert.equal(put.status, 200);
    const k = await issue({ name: 'pt', kind: 'personal', user: 'u_edge', role: 'editor' }, owner);
    const h = { authorization: `Bearer ${k.token}` };
    assert.equal((await get('/v1/accounts/acc_1/x', h, { method: 'POST', body: '{}' })).status, 200);
    await get('/_users/u_edge', { 'x-admin-token': ADMIN }, { method: 'PUT', body: JSON.stringify({ ...owner, roles: ['reader'], version: 2 }) });
    assert.equal((await get('/v1/accounts/acc_1/x', h, { method: 'POST', body: '{}' })).status, 403);
  });

  test('admin route refuses bad input with a typed error and keeps serving', async () => {
    const r = await get('/_keys', { 'x-admin-token': ADMIN }, { method: 'POST', body: JSON.stringify({ spec: { name: '' } }) });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error, 'invalid_argument');
    assert.equal((await get('/health')).status, 200);
    assert.ok(!/uncaught|panicked|unreachable/i.test(log), log);
  });
});
