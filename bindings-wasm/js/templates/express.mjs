// keycel middleware for Express (4 and 5).
//
//   const { keycel } = require('keycel/express');
//   app.get('/v1/accounts/:account_id/data',
//     keycel({ engine, action: 'api.read', account: 'account_id', lookup: (id) => db.key(id) }),
//     (req, res) => res.json({ keyId: req.keycel.keyId }));
//
// A denial is the decision's status, headers and body. An allowed request's lease is held
// until the response has finished (last byte written) or its connection closed, including
// when a handler throws.
import { KeycelConfigError, checkOptions, decide, releaser, routeAccount } from './framework.mjs';

export { KeycelConfigError };

/** Answers a denied decision (status, headers and the JSON body from core). */
export function sendDecision(res, decision) {
  res.status(decision.status);
  for (const name of Object.keys(decision.headers)) res.setHeader(name, decision.headers[name]);
  res.setHeader('content-type', 'application/json');
  res.end(decision.body);
}

/** Express middleware authorizing `action` (on the account in route parameter `account`). */
export function keycel(options) {
  const opts = checkOptions(options, 'keycel/express');
  return function keycelMiddleware(req, res, next) {
    let target;
    try {
      target = {
        action: typeof opts.action === 'function' ? opts.action(req) : opts.action,
        account: routeAccount(opts.account, req.params, req, 'keycel/express'),
        method: req.method,
        path: req.path,
        ip: (opts.ip ? opts.ip(req) : req.ip) ?? null, // req.ip: the socket's unless 'trust proxy' is set
      };
    } catch (e) {
      next(e);
      return;
    }
    decide(opts, req.headers, target).then((decision) => {
      if (!decision.allowed) {
        sendDecision(res, decision);
        return;
      }
      const release = releaser(decision);
      res.once('finish', release);
      res.once('close', release);
      req.keycel = decision;
      next();
    }, next);
  };
}
