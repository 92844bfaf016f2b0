// Durable Object admission (issue 13): the example in examples/durable-admission/ in real
// workerd on 127.0.0.1 (workerd runs Durable Objects locally): one object per key counts that
// key's budget for every request, with keycel's own admission logic compiled to wasm.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HERE } from './helpers.mjs';

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

const get = (p, headers = {}, init = {}) => fetch(`${base}${p}`, { headers, signal: AbortSignal.timeout(20_000), ...init });

async function issue(budget) {
  const r = await get('/_keys', { 'x-admin-token': ADMIN, 'content-type': 'application/json' },
    { method: 'POST', body: JSON.stringify({ spec: { name: 'do', role: 'reader', accounts: ['acc_1'] }, budget }) });
  assert.equal(r.status, 201, await r.clone().text());
  const k = await r.json();
  return { ...k, h: { authorization: `Bearer ${k.token}` } };
}

async function inFlight(keyId) {
  return (await (await get(`/_inflight/${keyId}`)).json()).in_flight;
}

describe('Durable Object admission in workerd', () => {
  before(async () => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      log = '';
      proc = spawn(WORKERD, ['serve', path.join(ROOT, 'examples', 'durable-admission', 'config.capnp'), '--socket-addr', `http=127.0.0.1:${port}`],
        { cwd: ROOT, env: { ...process.env, KEYCEL_ADMIN_TOKEN: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout.on('data', (d) => { log += d; });
      proc.stderr.on('data', (d) => { log += d; });
      const deadline = Date.now() + 30_000;
      try {
        for (;;) {
          if (proc.exitCode !== null) throw new Error(`workerd exited (${proc.exitCode}):\n${log}`);
          try {
            if ((await fetch(`${base}/health`, { signal: AbortSignal.timeout(1000) })).ok) return;
          } catch { /* not listening yet */ }
          if (Date.now() > deadline) throw new Error(`workerd did not become ready:\n${log}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } catch (e) {
        proc.kill('SIGKILL');
        if (attempt === 2 || !/address already in use/i.test(log)) throw e;
      }
    }
  });
  after(() => {
    if (proc && proc.exitCode === null) proc.kill('SIGTERM');
  });

  test('20 concurrent slow requests on a key limited to 5: exactly 5 admitted, slots come back', async () => {
    const k = await issue(null);
    const rs = await Promise.all(Array.from({ length: 20 }, () => get('/v1/accounts/acc_1/x?hold=2500', k.h)));
    const statuses = rs.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(5).fill(200), ...Array(15).fill(429)]);
    for (const r of rs.filter((x) => x.status === 429)) {
      assert.equal((await r.json()).error, 'too_many_requests');
      assert.equal(r.headers.get('retry-after'), '1');
    }
    assert.equal(await inFlight(k.clientId), 0, 'every lease released');
    assert.equal((await get('/v1/accounts/acc_1/x', k.h)).status, 200);
  });

  test('a rate limit holds across requests: the burst, then 429 rate_limited with the IETF headers', async () => {
    // 10 per minute with a burst of 4: a fresh key gets 4 at once, then one per 6 s.
    const k = await issue({ rate_limit: { limit: 10, per: '1m', burst: 4 } });
    const rs = [];
    for (let i = 0; i < 12; i++) rs.push(await get('/v1/accounts/acc_1/x', k.h));
    const ok = rs.filter((r) => r.status === 200);
    assert.equal(ok.length, 4, rs.map((r) => r.status).join(','));
    assert.equal(ok[0].headers.get('ratelimit-policy'), '"default";q=10;w=60');
    assert.match(ok[3].headers.get('ratelimit'), /^"default";r=0;t=\d+$/);
    const refused = rs.find((r) => r.status === 429);
    assert.equal((await refused.json()).error, 'rate_limited');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.equal(refused.headers.get('ratelimit-policy'), '"default";q=10;w=60');
  });

  test('credits never go below zero under 8 concurrent clients, and an eviction does not restore them', async () => {
    const setAt = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    const k = await issue({ max_concurrent: 100, credits: { remaining: 7, refill: null, set_at: setAt } });
    const results = [];
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 3; i++) results.push(await get('/v1/accounts/acc_1/x', k.h));
    }));
    const ok = results.filter((r) => r.status === 200);
    assert.equal(ok.length, 7, results.map((r) => r.status).join(','));
    const left = (await Promise.all(ok.map((r) => r.json()))).map((b) => b.creditsRemaining).sort((a, b) => a - b);
    assert.deepEqual(left, [0, 1, 2, 3, 4, 5, 6], 'each credit spent once');
    for (const r of results.filter((x) => x.status === 429)) assert.equal((await r.json()).error, 'usage_exceeded');
    // The object loses its memory (what an eviction does): the persisted count is restored.
    assert.deepEqual(await (await get(`/_evict/${k.clientId}`, { 'x-admin-token': ADMIN }, { method: 'POST' })).json(), { evicted: true });
    const after = await get('/v1/accounts/acc_1/x', k.h);
    assert.equal(after.status, 429);
    assert.equal((await after.json()).error, 'usage_exceeded');
    assert.ok(!/uncaught|panicked|unreachable/i.test(log), log);
  });
});
