// The shared HTTP cases (tests/http_cases/) against keycel/express and keycel/hono in real
// servers on 127.0.0.1: Express on Node, Hono on Node (@hono/node-server) and Hono in workerd
// (the example worker, bundled by `make build`).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Engine } from 'keycel';
import { CHEAP, DEFAULT_POLICY, HERE } from './helpers.mjs';
import { CASES, issueKeys, run, startServer } from './http_cases.mjs';

const ROOT = path.resolve(HERE, '..');
const ADMIN = 'test-admin-token';
const engine = new Engine(DEFAULT_POLICY);

const TARGETS = {
  'express (node)': (env) => startServer(process.execPath, [path.join(ROOT, 'examples', 'express', 'server.mjs')], env, ROOT),
  'hono (node)': (env) => startServer(process.execPath, [path.join(ROOT, 'examples', 'hono', 'node.mjs')], env, ROOT),
  'hono (workerd)': (env) => startServer(path.join(ROOT, 'node_modules', '.bin', 'workerd'),
    ['serve', path.join(ROOT, 'examples', 'worker', 'config.capnp'), '--socket-addr', 'http=127.0.0.1:PORT'],
    { ...env, KEYCEL_ADMIN_TOKEN: ADMIN }, ROOT),
};

for (const [name, start] of Object.entries(TARGETS)) {
  describe(`http cases: ${name}`, () => {
    let server;
    const keys = issueKeys(engine, CHEAP);
    before(async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keycel-http-'));
      const file = path.join(dir, 'records.json');
      fs.writeFileSync(file, `[${Object.values(keys).map((k) => k.recordJson).join(',')}]`);
      server = await start({ KEYCEL_RECORDS: file });
      if (name.includes('workerd')) {
        for (const k of Object.values(keys)) {
          const r = await fetch(`${server.base}/_records`, { method: 'PUT', headers: { 'x-admin-token': ADMIN }, body: k.recordJson });
          assert.equal(r.status, 200, await r.text());
        }
      }
    });
    after(() => server && server.stop());
    for (const scenario of CASES.scenarios) {
      test(scenario.name, async () => {
        try {
          await run(server.base, scenario, keys);
        } catch (e) {
          e.message += `\n--- server log ---\n${server.log().slice(-3000)}`;
          throw e;
        }
      });
    }
  });
}

describe('middleware set-up mistakes fail closed', () => {
  test('options are checked when the middleware is made', async () => {
    const { keycel: hono, KeycelConfigError } = await import('keycel/hono');
    const { keycel: express } = await import('keycel/express');
    for (const make of [hono, express]) {
      assert.throws(() => make({ engine, action: 'api.read' }), { name: 'KeycelConfigError' }, 'no lookup');
      assert.throws(() => make({ engine: {}, action: 'api.read', lookup: () => null }), { name: 'KeycelConfigError' });
      assert.throws(() => make({ engine, lookup: () => null }), { name: 'KeycelConfigError' }, 'no action');
    }
    assert.equal(KeycelConfigError.name, 'KeycelConfigError');
  });
  test('an account parameter the route lacks answers 500, never the handler', async () => {
    const { Hono } = await import('hono');
    const { keycel } = await import('keycel/hono');
    const app = new Hono();
    let reached = false;
    app.get('/v1/:account/data', keycel({ engine, action: 'api.read', account: 'account_id', lookup: () => null }), (c) => {
      reached = true;
      return c.text('ok');
    });
    const r = await app.request('/v1/acc_1/data');
    assert.equal(r.status, 500);
    assert.equal(reached, false);
  });
  test('express: CommonJS and ES module faces export the same names', async () => {
    const { createRequire } = await import('node:module');
    const cjs = createRequire(import.meta.url)('keycel/express');
    const esm = await import('keycel/express');
    assert.deepEqual(Object.keys(cjs).sort(), Object.keys(esm).sort());
  });
});
