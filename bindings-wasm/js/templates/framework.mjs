// Shared by keycel's framework middleware (keycel/hono, keycel/express): credentials, your
// record lookup, the engine's decision. It only moves values: the engine decides, and a
// denial is answered with the decision's own status, headers and body.

/** A middleware configuration mistake (thrown at set-up, or per request: fails closed). */
export class KeycelConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = 'KeycelConfigError';
  }
}

/** Checks middleware options once, at set-up, so a mistake fails at start-up. */
export function checkOptions(options, where) {
  if (!options || typeof options !== 'object') throw new KeycelConfigError(`${where}: pass { engine, action, lookup, ... }`);
  const { engine, action, account, lookup, lookupUser, now, ip } = options;
  if (!engine || typeof engine.authorize !== 'function' || typeof engine.parseCredentials !== 'function') {
    throw new KeycelConfigError(`${where}: options.engine must be a keycel Engine`);
  }
  if (typeof action !== 'string' && typeof action !== 'function') {
    throw new KeycelConfigError(`${where}: options.action must be an action name or a function of the request`);
  }
  if (account !== undefined && account !== null && typeof account !== 'string' && typeof account !== 'function') {
    throw new KeycelConfigError(`${where}: options.account must be a route parameter name or a function of the request`);
  }
  if (typeof lookup !== 'function') {
    throw new KeycelConfigError(`${where}: options.lookup(clientId) must return the KeyRecord (or null), sync or async`);
  }
  if (lookupUser !== undefined && lookupUser !== null && typeof lookupUser !== 'function') {
    throw new KeycelConfigError(`${where}: options.lookupUser(userId) must return the UserRecord (or null)`);
  }
  if (now !== undefined && typeof now !== 'function') throw new KeycelConfigError(`${where}: options.now must be a function`);
  if (ip !== undefined && ip !== null && typeof ip !== 'function') throw new KeycelConfigError(`${where}: options.ip must be a function of the request`);
  return { engine, action, account, lookup, lookupUser: lookupUser || null, now: now || Date.now, ip: ip || null };
}

/** The account named by a route parameter: a route without it is a configuration mistake. */
export function routeAccount(account, params, req, where) {
  if (account === undefined || account === null) return null;
  if (typeof account === 'function') return account(req) ?? null;
  const value = params ? params[account] : undefined;
  if (typeof value !== 'string') {
    throw new KeycelConfigError(`${where}: the account comes from route parameter ${JSON.stringify(account)}, which this route lacks`);
  }
  return value;
}

/**
 * The decision for one request: `target` is `{ action, account, method, path, ip }`.
 * Credential errors (401/400) come back as the core's decision, like every other denial.
 */
export async function decide(opts, headers, target) {
  let credentials;
  try {
    credentials = opts.engine.parseCredentials(headers);
  } catch (e) {
    if (e && typeof e === 'object' && e.decision) return e.decision;
    throw e;
  }
  try {
    const record = (await opts.lookup(credentials.clientId)) ?? null;
    const userId = record && typeof record === 'object' ? record.user : null;
    const user = userId && opts.lookupUser ? (await opts.lookupUser(userId)) ?? null : null;
    return opts.engine.authorize(record, credentials, target, opts.now(), user);
  } finally {
    credentials.free(); // zeroizes the secret now rather than at garbage collection
  }
}

/** Releases a decision's lease once, however many of the end events fire. */
export function releaser(decision) {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (decision.lease) decision.lease.release();
  };
}
