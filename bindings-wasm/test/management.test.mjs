// The management API as a fetch handler in Node (issue 15): the shared HTTP cases over
// MemoryDocumentStore, called directly and through Hono on a real socket.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { Engine, Keyring, MemoryDocumentStore, managementHandler, KeycelError } from 'keycel';
import { CHEAP, DEFAULT_POLICY } from './helpers.mjs';
import { runManagementCases, seedWorld } from './management_cases.mjs';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const engine = new Engine(DEFAULT_POLICY);

async function world() {
  const store = new MemoryDocumentStore();
  const keys = await seedWorld(new Keyring(engine, store, { hash: CHEAP }), NOW);
  return { store, keys };
}

describe('management fetch handler (Node)', () => {
  test('shared HTTP cases, handler called with fetch Requests', async () => {
    const { store, keys } = await world();
    const handler = managementHandler({ engine, store, now: () => NOW, hash: CHEAP });
    const n = await runManagementCases((method, path, headers, body) =>
      handler(new Request(`http://keycel.test${path}`, { method, headers, body })), keys);
    assert.ok(n >= 30, `${n} requests`);
  });

  test('shared HTTP cases through Hono on 127.0.0.1 (app.all one-liner, mounted under a prefix)', async () => {
    const { store, keys } = await world();
    const manage = managementHandler({ engine, store, prefix: '/manage', now: () => NOW, hash: CHEAP });
    const app = new Hono();
    app.all('/manage/*', (c) => manage(c.req.raw));
    const server = await new Promise((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    try {
      const base = `http://127.0.0.1:${server.address().port}/manage`;
      await runManagementCases((method, path, headers, body) =>
        fetch(`${base}${path}`, { method, headers, body, signal: AbortSignal.timeout(20_000) }), keys);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  test('a commit that loses a race twice answers 409 conflict; a failing store answers 503', async () => {
    const { store, keys } = await world();
    const id = keys.acc1_reader.id;
    // Every commit check finds a newer version than the run read.
    const racing = Object.create(store);
    let bump = 0;
    racing.get = async (c, i) => {
      const d = await store.get(c, i);
      if (c !== 'keys' || i !== id || d === null) return d;
      const r = JSON.parse(d);
      r.version += bump++;
      return JSON.stringify(r);
    };
    const handler = managementHandler({ engine, store: racing, now: () => NOW });
    const patch = () => handler(new Request(`http://x/keys/${id}`, {
      method: 'PATCH', headers: { authorization: `Bearer ${keys.admin.token}` }, body: JSON.stringify({ name: 'renamed' }) }));
    const r = await patch();
    assert.equal(r.status, 409, await r.clone().text());
    assert.equal((await r.json()).error.code, 'conflict');
    assert.equal(JSON.parse(await store.get('keys', id)).version, 1, 'nothing written');
    const down = Object.create(store);
    down.get = async () => { throw new Error('connection refused'); };
    const r2 = await managementHandler({ engine, store: down, now: () => NOW })(new Request('http://x/keys', {
      headers: { authorization: `Bearer ${keys.admin.token}` } }));
    assert.equal(r2.status, 503);
    const text = await r2.text();
    assert.equal(JSON.parse(text).error.code, 'temporarily_unavailable', 'core\'s answer for a store that is down');
    assert.ok(!text.includes('connection refused'), 'the host error stays out of the answer');
    assert.throws(() => managementHandler({ engine, store, prefix: 'manage/' }), (e) => e instanceof KeycelError && e.code === 'invalid_argument');
  });
});
