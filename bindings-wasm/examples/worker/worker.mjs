// An edge worker guarding an API with keycel (runs in workerd / Cloudflare Workers).
//
// Module top level: compile the wasm and the policy once per isolate. Nothing here draws
// random bytes or reads the clock (Workers forbid randomness outside handlers); the
// verified-secret cache draws its key on first use, inside a request.
//
// Routes:
//   GET|POST /v1/accounts/:account/...   api.read / api.write on that account
//   * /admin/...                         admin.<path segments> (admin scopes only here)
//   POST /_keys                          issue a key (admin tool; needs x-admin-token)
//   PUT  /_users/:id                     store a user record (needs x-admin-token)
//   GET  /_inflight/:keyId               leases in flight (for tests)
// Records live in this isolate's memory here; a real worker reads them from KV or a
// database between `parseCredentials` and `authorize`.
import { initSync, Engine, KeyRecord, UserRecord, KeycelError } from 'keycel/web.mjs';
import wasmModule from 'keycel/keycel_bg.wasm';
import policyText from 'policy.toml';

initSync({ module: wasmModule });
const engine = new Engine(policyText, { origin: 'policies/default.toml' });

const records = new Map(); // client id -> KeyRecord handle (stands in for KV)
const users = new Map(); // user id -> UserRecord handle

const json = (status, value, headers = {}) =>
  new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json', ...headers } });

/** A keycel decision as the HTTP response to send. */
const deny = (d) => new Response(d.body, { status: d.status, headers: { 'content-type': 'application/json', ...d.headers } });

function route(method, path) {
  const api = path.match(/^\/v1\/accounts\/([^/]+)(\/.*)?$/);
  if (api) return { action: method === 'GET' || method === 'HEAD' ? 'api.read' : 'api.write', account: decodeURIComponent(api[1]) };
  const admin = path.match(/^\/admin\/([a-z_]+)\/([a-z_]+)/);
  if (admin) return { action: `admin.${admin[1]}.${admin[2]}`, account: null };
  return null;
}

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
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/health') return json(200, { ok: true });
    if (url.pathname.startsWith('/_inflight/')) {
      return json(200, { inFlight: engine.inFlight(decodeURIComponent(url.pathname.slice('/_inflight/'.length))) });
    }
    if (url.pathname.startsWith('/_')) return admin(request, env, url);

    const target = route(request.method, url.pathname);
    if (!target) return new Response(engine.notFoundBody(), { status: 404, headers: { 'content-type': 'application/json' } });

    let credentials;
    try {
      credentials = engine.parseCredentials(request.headers);
    } catch (e) {
      if (e instanceof KeycelError && e.decision) return deny(e.decision); // 401 / 400
      throw e;
    }
    try {
      const record = records.get(credentials.clientId) ?? null; // a KV read in a real worker
      const user = record && record.user ? users.get(record.user) ?? null : null;
      const decision = engine.authorize(record, credentials, {
        action: target.action,
        account: target.account,
        method: request.method,
        path: url.pathname,
        ip: request.headers.get('cf-connecting-ip'),
      }, Date.now(), user);
      if (!decision.allowed) return deny(decision); // 401 / 403 / 404 / 429
      try {
        const hold = Number(url.searchParams.get('hold') ?? 0);
        if (hold > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(hold, 10_000)));
        return json(200, { ok: true, keyId: decision.keyId, rules: decision.matchedRules, cacheHit: decision.cacheHit, method: decision.method });
      } finally {
        decision.lease.release();
      }
    } finally {
      credentials.free(); // zeroizes the secret now rather than at garbage collection
    }
  },
};
