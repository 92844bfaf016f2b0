// keycel's keyring over a host document store, and the management API as a fetch handler
// (issue 15). Every decision is the core's: this module moves documents between your store
// and a core session (see src/keyring.rs) and nothing more.
//
// The store protocol is Python's: four async methods over JSON documents (storage form) in
// the collections "keys", "users" and "retired":
//   get(collection, id) -> string | null      put(collection, id, document) -> void
//   delete(collection, id) -> boolean         list(collection) -> string[]
// (get/list may also return plain objects, e.g. from a JSON column).
//
// One operation: run the core operation over what is loaded; load what it missed, run again
// (at most MAX_RUNS times); then commit its writes: read the documents core wants checked,
// let core verify their versions, apply the puts/deletes in order. Commits to one store
// object are serialized here, so within one isolate exactly one of several racing writers
// wins and the others get `KeycelError` `conflict` (nothing written). Across isolates the
// store must serialize commits itself: a Durable Object does (its input gate holds other
// events while a storage call is pending, and a commit awaits only storage calls).

let rt = null;

/** Called by the package entry points with the wasm bindings (Node and web builds). */
export function installKeyring(runtime) {
  rt = runtime;
}

const MAX_RUNS = 16;
const METHODS = ['get', 'put', 'delete', 'list'];

function fail(code, message, extra) {
  return new rt.KeycelError(code, message, extra);
}

function checkStore(store, where) {
  if (!store || typeof store !== 'object' || METHODS.some((m) => typeof store[m] !== 'function')) {
    throw fail('invalid_argument', `${where}: the store must have async get, put, delete and list methods`);
  }
  return store;
}

/** A host store call; whatever it throws becomes `store_error` (the original as `cause`). */
async function call(store, method, ...args) {
  try {
    return await store[method](...args);
  } catch (e) {
    throw fail('store_error', `document store ${method}(${args.slice(0, 2).map((a) => JSON.stringify(a)).join(', ')}) failed: ${e && e.message ? e.message : String(e)}`, { cause: e });
  }
}

function docText(doc, what) {
  if (doc === undefined || doc === null) return null;
  if (typeof doc === 'string') return doc;
  if (typeof doc === 'object') return JSON.stringify(doc);
  throw fail('store_error', `document store returned a ${typeof doc} for ${what}`);
}

/** Loads what a run missed: a whole collection for a listing (users too, for their owners). */
async function loadMisses(session, store, misses) {
  const lists = new Set(misses.filter(([, id]) => id === null).map(([c]) => c));
  if (lists.has('keys')) lists.add('users');
  const singles = misses.filter(([c, id]) => id !== null && !lists.has(c));
  await Promise.all([
    ...[...lists].map(async (c) => {
      const docs = await call(store, 'list', c);
      if (!docs || typeof docs[Symbol.iterator] !== 'function') throw fail('store_error', `document store list(${JSON.stringify(c)}) did not return an array`);
      session.loadAll(c, [...docs].map((d) => docText(d, c)));
    }),
    ...singles.map(async ([c, id]) => session.load(c, id, docText(await call(store, 'get', c, id), `${c}/${id}`))),
  ]);
}

async function drive(session, store, step) {
  for (let run = 0; run < MAX_RUNS; run++) {
    const out = step();
    if (!out.misses) return out;
    await loadMisses(session, store, out.misses);
  }
  throw fail('store_error', `the operation still needed documents after ${MAX_RUNS} runs`);
}

const tails = new WeakMap();

/** Runs `fn` when every earlier commit to `store` has finished (one committer at a time). */
function exclusive(store, fn) {
  const prev = tails.get(store) || Promise.resolve();
  const next = prev.then(fn, fn);
  tails.set(store, next.then(() => {}, () => {}));
  return next;
}

/** Reads the checked documents, asks `check(found)` (core), applies the plan's ops. */
async function commit(session, store, check) {
  const plan = session.plan();
  if (plan.ops.length === 0) return null;
  return exclusive(store, async () => {
    const found = await Promise.all(plan.checks.map(async ([c, id]) => docText(await call(store, 'get', c, id), `${c}/${id}`)));
    const refused = check(found);
    if (refused) return refused;
    for (const op of plan.ops) {
      if (op[0] === 'put') await call(store, 'put', op[1], op[2], op[3]);
      else await call(store, 'delete', op[1], op[2]);
    }
    return null;
  });
}

function actorArg(actor) {
  if (actor === undefined || actor === null || typeof actor === 'string') return actor ?? undefined;
  if (typeof actor !== 'object') throw fail('invalid_argument', 'actor must be an operator name or { key, user }');
  const key = actor.key instanceof rt.KeyRecord ? actor.key.toStorageJSON() : actor.key;
  const user = actor.user instanceof rt.UserRecord ? actor.user.toJSON() : actor.user;
  return { key, user: user ?? undefined };
}

function timeArg(t) {
  return t instanceof Date ? t.toISOString() : t;
}

/** Documents in memory (tests, demos, one-process services). */
export class MemoryDocumentStore {
  constructor() {
    this.collections = new Map();
  }

  col(c) {
    let m = this.collections.get(c);
    if (!m) this.collections.set(c, (m = new Map()));
    return m;
  }

  async get(collection, id) {
    return this.col(collection).get(id) ?? null;
  }

  async put(collection, id, document) {
    if (typeof document !== 'string') throw new TypeError('document must be JSON text');
    this.col(collection).set(id, document);
  }

  async delete(collection, id) {
    return this.col(collection).delete(id);
  }

  async list(collection) {
    return [...this.col(collection).values()];
  }
}

/**
 * A Durable Object's storage (`state.storage`) as a document store: one storage key per
 * document, `<prefix><collection>/<id>`. Use it from inside the Durable Object: its input
 * gate makes each commit's read-check-write atomic.
 */
export class DurableObjectDocumentStore {
  constructor(storage, options) {
    if (!storage || ['get', 'put', 'delete', 'list'].some((m) => typeof storage[m] !== 'function')) {
      throw fail('invalid_argument', 'DurableObjectDocumentStore needs a Durable Object storage (state.storage)');
    }
    this.storage = storage;
    this.prefix = (options && options.prefix) ?? 'keycel/';
  }

  key(collection, id) {
    return `${this.prefix}${collection}/${id}`;
  }

  async get(collection, id) {
    return (await this.storage.get(this.key(collection, id))) ?? null;
  }

  async put(collection, id, document) {
    await this.storage.put(this.key(collection, id), document);
  }

  async delete(collection, id) {
    return this.storage.delete(this.key(collection, id));
  }

  async list(collection) {
    return [...(await this.storage.list({ prefix: `${this.prefix}${collection}/` })).values()];
  }
}

/**
 * Every keyring operation of the Rust and Python keyrings, async, over a document store.
 * `engine` (or `null`: only the operator may act) supplies the policy's management rules,
 * token format and hash preset. Each call takes `{ actor, now }`: the actor is an operator
 * name (default `admin`) or `{ key }`, a key the policy decides for (re-read from the store).
 */
export class Keyring {
  constructor(engine, store, options) {
    if (engine !== null && engine !== undefined && !(engine instanceof rt.Engine)) {
      throw fail('invalid_argument', 'Keyring: engine must be a keycel Engine or null');
    }
    this.engine = engine ?? null;
    this.store = checkStore(store, 'Keyring');
    this.options = options ?? {};
  }

  session() {
    return this.engine ? rt.KeyringSession.forEngine(this.engine, this.options) : rt.KeyringSession.operatorOnly(this.options);
  }

  /** One operation: load, run, commit; a lost race throws `conflict` and writes nothing. */
  async op(name, args, options) {
    const opts = options ?? {};
    const now = opts.now ?? Date.now();
    const session = this.session();
    try {
      const a = { ...args, actor: actorArg(opts.actor) };
      const out = await drive(session, this.store, () => session.run(name, a, now));
      await commit(session, this.store, (found) => {
        session.verify(found);
        return null;
      });
      return out.value;
    } finally {
      session.free();
    }
  }

  create(spec, options) { return this.op('create', { spec }, options); }
  get(id, options) { return this.op('get', { id }, options); }
  list(filter, options) { return this.op('list', { filter: filter ?? undefined }, options); }
  update(id, changes, options) {
    const c = { ...changes };
    if ('expiresAt' in c) c.expiresAt = timeArg(c.expiresAt);
    return this.op('update', { id, changes: c }, options);
  }
  rename(id, name, options) { return this.update(id, { name }, options); }
  setDescription(id, description, options) { return this.update(id, { description }, options); }
  describe(id, description, options) { return this.setDescription(id, description, options); }
  setRole(id, role, options) { return this.update(id, { role }, options); }
  setScopes(id, scopes, options) { return this.update(id, { scopes }, options); }
  setAccounts(id, accounts, options) { return this.update(id, { accounts }, options); }
  setExpiry(id, expiresAt, options) { return this.update(id, { expiresAt: expiresAt ?? null }, options); }
  setMaxConcurrent(id, maxConcurrent, options) { return this.update(id, { maxConcurrent: maxConcurrent ?? null }, options); }
  setMetadata(id, metadata, options) { return this.update(id, { metadata }, options); }
  setRateLimit(id, rateLimit, options) { return this.update(id, { rateLimit: rateLimit ?? null }, options); }
  setCredits(id, credits, options) { return this.update(id, { credits: credits ?? null }, options); }
  setActive(id, active, options) { return this.update(id, { active }, options); }
  activate(id, options) { return this.update(id, { active: true }, options); }
  deactivate(id, options) { return this.update(id, { active: false }, options); }
  rotate(id, options) { return this.op('rotate', { id, grace: options && options.grace }, options); }
  async delete(id, options) { return this.op('delete', { id }, options); }
  putUser(user, options) {
    return this.op('putUser', { user: user instanceof rt.UserRecord ? user.toJSON() : user }, options);
  }
  getUser(id, options) { return this.op('getUser', { id }, options); }
  listUsers(options) { return this.op('listUsers', {}, options); }
  async removeUser(id, options) { return (await this.op('removeUser', { id }, options)).removedTokens; }
  explain(id, options) { return this.op('explain', { id }, options); }

  /** The stored record for `authorize` (a parsed handle), or null: a `lookup` for the middleware. */
  async findKey(clientId) {
    const doc = docText(await call(this.store, 'get', 'keys', clientId), `keys/${clientId}`);
    return doc === null ? null : rt.KeyRecord.parse(doc);
  }

  /** The stored user (a parsed handle), or null: a `lookupUser` for the middleware. */
  async findUser(userId) {
    const doc = docText(await call(this.store, 'get', 'users', userId), `users/${userId}`);
    return doc === null ? null : rt.UserRecord.parse(doc);
  }
}

function toResponse(answer) {
  return new Response(answer.body === '' ? null : answer.body, { status: answer.status, headers: answer.headers });
}

/**
 * The management API (core `management::handle`) as a fetch handler, `(Request) =>
 * Promise<Response>`: workerd / Cloudflare Workers, Deno, Node >= 18 (e.g. with
 * @hono/node-server) and Hono (`app.all('/manage/*', (c) => handler(c.req.raw))`).
 * `prefix` is the mount path to strip (`/manage`). A commit that loses a race is rerun once
 * from fresh reads (an Idempotency-Key retry then replays); a second loss answers 409
 * `conflict`. A failing store answers 503 (core's answer), nothing half-written.
 */
export function managementHandler(options) {
  if (!options || typeof options !== 'object') throw fail('invalid_argument', 'managementHandler: pass { engine, store, prefix }');
  const { engine, store, prefix, now, clientIp, hash } = options;
  if (!(engine instanceof rt.Engine)) throw fail('invalid_argument', 'managementHandler: options.engine must be a keycel Engine');
  checkStore(store, 'managementHandler');
  if (prefix !== undefined && (typeof prefix !== 'string' || (prefix !== '' && (!prefix.startsWith('/') || prefix.endsWith('/'))))) {
    throw fail('invalid_argument', 'managementHandler: prefix must be "" or a path like "/manage" (no trailing slash)');
  }
  const clock = now ?? Date.now;
  const sessionOptions = hash === undefined ? {} : { hash };
  return async function keycelManagement(request) {
    const url = new URL(request.url);
    let path = url.pathname;
    if (prefix) {
      if (path !== prefix && !path.startsWith(`${prefix}/`)) return new Response(null, { status: 404 });
      path = path.slice(prefix.length) || '/';
    }
    path += url.search;
    const headers = rt.flattenHeaders(request.headers);
    const body = new Uint8Array(await request.arrayBuffer());
    const ip = clientIp ? clientIp(request) ?? undefined : undefined;
    for (let attempt = 0; ; attempt++) {
      const session = rt.KeyringSession.forEngine(engine, sessionOptions);
      try {
        let answer;
        try {
          answer = await drive(session, store, () => session.http(request.method, path, headers, body, ip, clock()));
          if (answer.status >= 400) return toResponse(answer);
          const refused = await commit(session, store, (found) => session.httpCommitCheck(found, undefined));
          if (refused) {
            if (refused.status === 409 && attempt === 0) continue;
            return toResponse(refused);
          }
        } catch (e) {
          if (e instanceof rt.KeycelError && e.code === 'store_error') return toResponse(session.httpCommitCheck(undefined, e.message));
          throw e;
        }
        return toResponse(answer);
      } finally {
        session.free();
      }
    }
  };
}
