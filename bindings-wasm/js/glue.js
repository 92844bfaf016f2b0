// Helpers the Rust side imports (a wasm-bindgen snippet, shared by the Node and web builds).
// They only convert values; every decision is made in the Rust core.

/** The one error class of the package: `code` says what went wrong, machine-readably. */
export class KeycelError extends Error {
  constructor(code, message, extra) {
    super(message);
    this.name = 'KeycelError';
    this.code = code;
    if (extra && typeof extra === 'object') {
      for (const k of Object.keys(extra)) this[k] = extra[k];
    }
  }
}

export function makeError(code, message, extra) {
  return new KeycelError(code, message, extra);
}

const MAX_HEADERS = 1024;

function pushPair(out, name, value) {
  if (typeof name !== 'string') {
    throw new KeycelError('invalid_argument', 'header names must be strings');
  }
  if (Array.isArray(value)) {
    for (const v of value) pushPair(out, name, v);
    return;
  }
  if (value === undefined || value === null) return;
  if (typeof value !== 'string') {
    throw new KeycelError('invalid_argument', `header ${JSON.stringify(name.slice(0, 64))} must have a string value`);
  }
  if (out.length >= 2 * MAX_HEADERS) {
    throw new KeycelError('invalid_argument', `more than ${MAX_HEADERS} headers`);
  }
  out.push(name, value);
}

/**
 * Flattens request headers to [name, value, name, value, ...]. Accepts a fetch `Headers`
 * (or anything with `forEach(value, name)`, such as a `Map`), an array of [name, value]
 * pairs, or a plain object (Node's `IncomingHttpHeaders`, array values included).
 */
export function flattenHeaders(headers) {
  const out = [];
  if (headers === undefined || headers === null) return out;
  if (typeof headers !== 'object') {
    throw new KeycelError('invalid_argument', 'headers must be a Headers, a Map, an array of [name, value] pairs or an object');
  }
  if (Array.isArray(headers)) {
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new KeycelError('invalid_argument', 'header arrays must hold [name, value] pairs');
      }
      pushPair(out, pair[0], pair[1]);
    }
  } else if (typeof headers.forEach === 'function') {
    headers.forEach((value, name) => pushPair(out, name, value));
  } else {
    for (const name of Object.keys(headers)) pushPair(out, name, headers[name]);
  }
  return out;
}

/**
 * A decision as a plain object of one fixed shape (fast property access in every engine):
 * the decision, its response body, and for `authorize` the lease and authentication facts.
 * `packed` holds the strings, each `<UTF-16 length>:<text>` or `~` for null (one string
 * crosses from wasm instead of ten); the order is `pack` in src/decision.rs.
 */
export function makeDecision(allowed, status, packed, lease, needsRehash, cacheHit, viaPreviousSecret, rehash) {
  let i = 0;
  const next = () => {
    if (packed.charCodeAt(i) === 126) {
      i += 1;
      return null;
    }
    let n = 0;
    for (let c = packed.charCodeAt(i++); c !== 58; c = packed.charCodeAt(i++)) n = n * 10 + (c - 48);
    const s = packed.slice(i, i + n);
    i += n;
    return s;
  };
  const code = next();
  const message = next();
  const keyId = next();
  const reason = next();
  const body = next();
  const method = next();
  const headers = {};
  for (let h = Number(next()); h > 0; h--) {
    const name = next();
    headers[name] = next();
  }
  const matchedRules = [];
  for (let r = Number(next()); r > 0; r--) matchedRules.push(next());
  return {
    allowed,
    status,
    code,
    message,
    headers,
    keyId,
    matchedRules,
    reason,
    body,
    lease: lease === undefined ? null : lease,
    method,
    needsRehash,
    cacheHit,
    viaPreviousSecret,
    rehash: rehash === undefined ? null : rehash,
  };
}

const REQUEST_FIELDS = new Set(['action', 'account', 'method', 'path', 'ip', 'attributes', 'cost']);

function optionalString(request, name) {
  const v = request[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new KeycelError('invalid_argument', `request.${name} must be a string`);
  return v;
}

/** A request object (or its JSON text) as the argument list the Rust entry points take. */
function requestArgs(request) {
  if (typeof request === 'string') {
    try {
      request = JSON.parse(request);
    } catch {
      throw new KeycelError('invalid_argument', 'request is not valid JSON');
    }
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    throw new KeycelError('invalid_argument', 'request must be an object { action, account, method, path, ip, attributes }');
  }
  for (const k in request) {
    if (!REQUEST_FIELDS.has(k)) throw new KeycelError('invalid_argument', `request: unknown field ${JSON.stringify(k)}`);
  }
  if (typeof request.action !== 'string') throw new KeycelError('invalid_argument', 'request.action must be a string');
  let attributes;
  const a = request.attributes;
  if (a !== undefined && a !== null) {
    if (typeof a !== 'object' || Array.isArray(a)) {
      throw new KeycelError('invalid_argument', 'request.attributes must be an object');
    }
    for (const _ in a) {
      try {
        attributes = JSON.stringify(a);
      } catch {
        throw new KeycelError('invalid_argument', 'request.attributes cannot be serialized to JSON');
      }
      break;
    }
  }
  let cost;
  if (request.cost !== undefined && request.cost !== null) {
    cost = request.cost;
    if (!Number.isInteger(cost) || cost < 0 || cost > 4294967295) {
      throw new KeycelError('invalid_argument', 'request.cost must be a non-negative integer');
    }
  }
  return [request.action, optionalString(request, 'account'), optionalString(request, 'method'),
    optionalString(request, 'path'), optionalString(request, 'ip'), attributes, cost];
}

/**
 * Adds `Engine.prototype.authorize` and `decide`, which take optional handles (a missing
 * record, a missing user) and a request object: wasm-bindgen cannot borrow an optional
 * handle, so these pick the matching Rust entry point, and the request crosses as separate
 * strings. A record or user given as JSON text or a plain object is parsed for this call.
 */
export function installApi({ Engine, KeyRecord, UserRecord }) {
  const asHandle = (value, Class, what) => {
    if (value instanceof Class) return [value, false];
    if (typeof value === 'string' || (typeof value === 'object' && value !== null)) return [Class.parse(value), true];
    throw new KeycelError('invalid_argument', `${what} must be a ${Class.name}, JSON text or a plain object`);
  };
  const withHandles = (record, user, fn) => {
    const [rec, ownRec] = asHandle(record, KeyRecord, 'record');
    let usr = null;
    let ownUsr = false;
    try {
      if (user !== undefined && user !== null) [usr, ownUsr] = asHandle(user, UserRecord, 'user');
      return fn(rec, usr);
    } finally {
      if (ownRec) rec.free();
      if (ownUsr) usr.free();
    }
  };
  Object.defineProperty(Engine.prototype, 'authorize', {
    configurable: true,
    writable: true,
    value: function authorize(record, credentials, request, now, user) {
      const [action, account, method, path, ip, attributes, cost] = requestArgs(request);
      if (record === undefined || record === null) {
        return this.authorizeUnknown(credentials, action, account, method, path, ip, attributes, now, cost);
      }
      if ((user === undefined || user === null) && record instanceof KeyRecord) {
        return this.authorizeKey(record, credentials, action, account, method, path, ip, attributes, now, cost);
      }
      return withHandles(record, user, (rec, usr) => (usr === null
        ? this.authorizeKey(rec, credentials, action, account, method, path, ip, attributes, now, cost)
        : this.authorizePersonal(rec, usr, credentials, action, account, method, path, ip, attributes, now, cost)));
    },
  });
  Object.defineProperty(Engine.prototype, 'failureSubjects', {
    configurable: true,
    writable: true,
    value: function failureSubjects(record, credentials, ip, now, user) {
      const addr = ip === undefined || ip === null ? undefined : ip;
      if (addr !== undefined && typeof addr !== 'string') throw new KeycelError('invalid_argument', 'ip must be a string');
      if (record === undefined || record === null) return this.failureSubjectsUnknown(credentials, addr, now);
      if ((user === undefined || user === null) && record instanceof KeyRecord) {
        return this.failureSubjectsKey(record, credentials, addr, now);
      }
      return withHandles(record, user, (rec, usr) => (usr === null
        ? this.failureSubjectsKey(rec, credentials, addr, now)
        : this.failureSubjectsPersonal(rec, usr, credentials, addr, now)));
    },
  });
  Object.defineProperty(Engine.prototype, 'explain', {
    configurable: true,
    writable: true,
    value: function explain(record, user, now) {
      return withHandles(record, user, (rec, usr) => (usr === null
        ? this.explainKey(rec, now)
        : this.explainPersonal(rec, usr, now)));
    },
  });
  Object.defineProperty(Engine.prototype, 'decide', {
    configurable: true,
    writable: true,
    value: function decide(record, request, now, user) {
      const [action, account, method, path, ip, attributes] = requestArgs(request);
      return withHandles(record, user, (rec, usr) => (usr === null
        ? this.decideKey(rec, action, account, method, path, ip, attributes, now)
        : this.decidePersonal(rec, usr, action, account, method, path, ip, attributes, now)));
    },
  });
}
