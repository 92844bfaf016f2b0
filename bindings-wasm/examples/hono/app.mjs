// The example API on Hono, shared by the Node server (hono/node.mjs) and the edge worker
// (worker/worker.mjs). Routes: the HTTP contract of tests/http_cases/ plus the worker's
// generic ones. `lookup(clientId)` is your KV / database read (here: a Map).
import { Hono } from 'hono';
import { keycel } from 'keycel/hono';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `records`: client id -> KeyRecord; `users`: user id -> UserRecord; `ip`: the client address
 * for policies, a function of the context (the worker trusts Cloudflare's cf-connecting-ip).
 */
export function createApp(engine, records, users, ip = null) {
  const app = new Hono();
  const lookup = (clientId) => records.get(clientId) ?? null;
  const lookupUser = (userId) => users.get(userId) ?? null;
  const guard = (action, account) => keycel({ engine, action, account, lookup, lookupUser, ip });
  const notFound = () => new Response(engine.notFoundBody(), { status: 404, headers: { 'content-type': 'application/json' } });

  app.get('/health', (c) => c.json({ ok: true }));
  app.get('/_inflight/:keyId', (c) => c.json({ in_flight: engine.inFlight(c.req.param('keyId')) }));

  app.get('/v1/accounts/:account_id/data', guard('api.read', 'account_id'), (c) =>
    c.json({ account: c.req.param('account_id'), key_id: c.get('keycel').keyId }));
  app.get('/v1/accounts/:account_id/missing', guard('api.read', 'account_id'), () => notFound());
  app.get('/v1/accounts/:account_id/stream', guard('api.read', 'account_id'), (c) => {
    const chunks = Math.min(Number(c.req.query('chunks') ?? 3), 100);
    const ms = Math.min(Number(c.req.query('ms') ?? 0), 5000);
    let i = 0;
    const body = new ReadableStream({
      async pull(controller) {
        if (i >= chunks) return controller.close();
        if (i > 0) await sleep(ms);
        controller.enqueue(new TextEncoder().encode(`chunk ${i}\n`));
        i += 1;
      },
    });
    return c.body(body, 200, { 'content-type': 'text/plain' });
  });
  app.get('/v1/accounts/:account_id/boom', guard('api.read', 'account_id'), () => {
    throw new Error('the handler failed');
  });
  app.post('/admin/accounts', guard('admin.account.create'), (c) => c.json({ created: true, key_id: c.get('keycel').keyId }));

  // Generic routes: any method on an account (api.read for GET/HEAD, api.write otherwise),
  // admin.<group>.<verb> under /admin/.
  const write = (c) => (c.req.method === 'GET' || c.req.method === 'HEAD' ? 'api.read' : 'api.write');
  const answer = async (c) => {
    const d = c.get('keycel');
    const hold = Number(c.req.query('hold') ?? 0);
    if (hold > 0) await sleep(Math.min(hold, 10_000));
    return c.json({ ok: true, keyId: d.keyId, rules: d.matchedRules, cacheHit: d.cacheHit, method: d.method });
  };
  app.all('/v1/accounts/:account/*', guard(write, 'account'), answer);
  app.all('/admin/:group/:verb', guard((c) => `admin.${c.req.param('group')}.${c.req.param('verb')}`), answer);

  app.notFound(() => notFound()); // a missing resource answers like an out-of-scope account
  return app;
}
