// keycel middleware for Hono (Cloudflare Workers / workerd, Node, Deno, Bun).
//
//   import { keycel } from 'keycel/hono';
//   app.get('/v1/accounts/:account_id/data',
//     keycel({ engine, action: 'api.read', account: 'account_id', lookup: (id) => kv.get(id) }),
//     (c) => c.json({ keyId: c.get('keycel').keyId }));
//
// A denial is the decision's status, headers and body. An allowed request's lease is held
// until the response body has been sent to the last byte (or the client went away), or
// released at once when the handler fails.
import { KeycelConfigError, checkOptions, decide, releaser, routeAccount } from './framework.mjs';

export { KeycelConfigError };

/** A Response for a denied decision (status, headers and the JSON body from core). */
export function decisionResponse(decision) {
  return new Response(decision.body, { status: decision.status, headers: { 'content-type': 'application/json', ...decision.headers } });
}

/** The body of `response` wrapped so `release` runs after its last byte, or on cancel. */
function holdUntilSent(response, release) {
  if (!response.body) {
    release();
    return response;
  }
  const reader = response.body.getReader();
  const body = new ReadableStream({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          release();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (e) {
        release();
        controller.error(e);
      }
    },
    async cancel(reason) {
      release();
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

/** Hono middleware authorizing `action` (on the account in route parameter `account`). */
export function keycel(options) {
  const opts = checkOptions(options, 'keycel/hono');
  return async function keycelMiddleware(c, next) {
    const action = typeof opts.action === 'function' ? opts.action(c) : opts.action;
    const account = routeAccount(opts.account, c.req.param(), c, 'keycel/hono');
    const url = new URL(c.req.url);
    const decision = await decide(opts, c.req.raw.headers, {
      action,
      account,
      method: c.req.method,
      path: url.pathname,
      // No default: a client address header is only trustworthy behind a proxy that sets it
      // (on Cloudflare: `ip: (c) => c.req.header('cf-connecting-ip')`).
      ip: opts.ip ? opts.ip(c) ?? null : null,
    });
    if (!decision.allowed) return decisionResponse(decision);
    c.set('keycel', decision);
    const release = releaser(decision);
    try {
      await next();
    } catch (e) {
      release();
      throw e;
    }
    c.res = holdUntilSent(c.res, release);
  };
}
