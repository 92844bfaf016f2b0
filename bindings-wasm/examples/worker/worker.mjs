// An edge worker guarding an API with keycel on Hono (runs in workerd / Cloudflare Workers).
// `make build` bundles it with hono (esbuild, as wrangler would) into build/worker.mjs.
//
// Module top level: compile the wasm and the policy once per isolate. Nothing here draws
// random bytes or reads the clock (Workers forbid randomness outside handlers); the
// verified-secret cache draws its key on first use, inside a request.
//
// Routes: those of ../hono/app.mjs (the tests/http_cases contract, any method on
// /v1/accounts/:account/..., admin.<group>.<verb> on /admin/...) and admin tools:
//   POST /_keys            issue a key (needs x-admin-token)
//   PUT  /_users/:id       store a user record (needs x-admin-token)
//   PUT  /_records         store a key record; DELETE /_records/:id (needs x-admin-token)
//   *    /manage/...       the management API, keys in a Durable Object's storage (keystore.mjs)
//   POST /_mgmt/seed       create users and keys in that Durable Object (needs x-admin-token)
// Records live in this isolate's memory here; a real worker reads them from KV or a
// database in `lookup`.
import { initSync, Engine, KeyRecord, UserRecord, KeycelError } from 'keycel/web.mjs';
import wasmModule from 'keycel/keycel_bg.wasm';
import policyText from 'policy.toml';
import { createApp } from '../hono/app.mjs';
import { makeKeyStore } from './keystore.mjs';

initSync({ module: wasmModule });
const engine = new Engine(policyText, { origin: 'policies/default.toml' });

/** The Durable Object class holding the managed keys (bound as KEYS in config.capnp). */
export const KeyStore = makeKeyStore(engine);

const records = new Map(); // client id -> KeyRecord handle (stands in for KV)
const users = new Map(); // user id -> UserRecord handle
const app = createApp(engine, records, users, (c) => c.req.header('cf-connecting-ip'));

const json = (status, value) => new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });

async function admin(request, env, url) {
  if (request.headers.get('x-admin-token') !== env.ADMIN_TOKEN) return json(401, { error: 'admin token required' });
  try {
    if (request.method === 'POST' && url.pathname === '/_keys') {
      const { spec, owner } = await request.json();
      // Randomness (client id, secret, salt) is drawn here, inside the handler.
      const issued = engine.issueKey(spec, Date.now(), { hash: 'edge', owner });
      records.set(issued.clientId, issued.record);
      // Every form of the secret, once; `record` serializes to its public form (no hash).
      return json(201, {
        clientId: issued.clientId,
        token: issued.token,
        secretKey: issued.secretKey,
        authorization: issued.authorizationBasic,
        headers: issued.headers,
        record: issued.record,
      });
    }
    const user = url.pathname.match(/^\/_users\/([^/]+)$/);
    if (request.method === 'PUT' && user) {
      users.set(decodeURIComponent(user[1]), UserRecord.parse(await request.text()));
      return json(200, { ok: true });
    }
    if (request.method === 'PUT' && url.pathname === '/_records') {
      const record = KeyRecord.parse(await request.text());
      records.set(record.id, record);
      return json(200, { ok: true, id: record.id });
    }
    if (request.method === 'DELETE' && url.pathname.startsWith('/_records/')) {
      return json(200, { deleted: records.delete(decodeURIComponent(url.pathname.slice('/_records/'.length))) });
    }
  } catch (e) {
    if (e instanceof KeycelError) return json(400, { error: e.code, message: e.message });
    throw e;
  }
  return json(404, { error: 'not_found' });
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === '/manage' || url.pathname.startsWith('/manage/') || url.pathname === '/_mgmt/seed') {
      return env.KEYS.get(env.KEYS.idFromName('keys')).fetch(request);
    }
    if (url.pathname.startsWith('/_') && !url.pathname.startsWith('/_inflight/')) return admin(request, env, url);
    return app.fetch(request, env, ctx);
  },
};
