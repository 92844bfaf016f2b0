// One budget per key across every isolate of a Cloudflare deployment: each key's admission
// (concurrency, rate limit, credits) runs in one Durable Object per key, with keycel's own
// admission logic (`Admission`, the core's process-local admission compiled to wasm); and one
// failed-authentication budget per client address and per client id, in one Durable Object per
// subject (`FailureBudgets`, core's failure budget compiled to wasm).
//
// The worker authenticates and decides with an Engine built with `admission: 'external'` and
// `failureBudgets: 'external'` (its `authorize` counts neither). Before `authorize`, it asks
// `engine.failureSubjects(record, credentials, ip, now)` which subjects the attempt is charged
// to (core's rule: none for a cached secret of a valid key) and charges each subject's Durable Object in that
// order, giving the earlier charges back and answering core's 429 when one is refused; after
// `authorize` it gives them all back when the secret verified (`decision.method`), so
// legitimate traffic never spends a budget. Then it asks the key's Durable Object to admit the
// request with `engine.ticket(record, cost)`; it answers the refusal the object returns, or
// runs the handler and tells the object to release the lease when the response is done. The
// admission object persists each admitted credit count to its storage before answering (a
// Durable Object's output gate holds the answer until the write is durable) and restores it
// after an eviction, so spent credits never come back; rate and failure state is memory only
// (an eviction forgets at most one window's worth).
//
// The client address is `CF-Connecting-IP`, which Cloudflare's edge sets (a client cannot
// forge it there); under plain workerd, as in the tests, whoever sends the request sets it.
//
// Routes: GET|POST /v1/accounts/:account/... (?hold=ms holds the lease, ?cost=n), admin tools:
//   POST /_keys {spec, record?}   issue a key; `budget` sets rate_limit / credits on its record
//   GET  /_inflight/:keyId        leases in flight, as the key's Durable Object counts them
//   POST /_evict/:keyId           drops the object's memory (what an eviction loses)
//   POST /_deactivate/:keyId      marks the key's record inactive
// Records live in this isolate's memory here; a real worker reads them from KV or a database.
// config.capnp runs this module as two workers (two isolates, two engines) over the same
// Durable Objects, as a deployment's isolates are.
import { initSync, Engine, Admission, FailureBudgets, KeyRecord, KeycelError } from 'keycel/web.mjs';
import wasmModule from 'keycel/keycel_bg.wasm';
import policyText from 'policy.toml';

initSync({ module: wasmModule });
const engine = new Engine(policyText, { origin: 'policies/default.toml', admission: 'external', failureBudgets: 'external' });
const records = new Map(); // client id -> KeyRecord (stands in for KV)

const json = (status, value, headers = {}) =>
  new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json', ...headers } });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const answerOf = (d) => new Response(d.body, { status: d.status, headers: { 'content-type': 'application/json', ...d.headers } });

/** The Durable Object: one per key id (`idFromName(keyId)`), so one counter per key. */
export class KeyAdmission {
  constructor(state) {
    this.state = state;
    this.admission = new Admission(policyText, 'policies/default.toml');
    this.restored = false;
  }

  async fetch(request) {
    const url = new URL(request.url);
    const body = request.method === 'POST' ? await request.json() : {};
    const now = Date.now();
    switch (url.pathname) {
      case '/admit': {
        if (!this.restored && body.ticket.credits) {
          // First metered request since the object started: the persisted count first.
          // (Storage calls close the input gate: no other request interleaves.)
          this.admission.restoreCredits(body.ticket, (await this.state.storage.get('credits')) ?? null, now);
          this.restored = true;
        }
        const answer = this.admission.admit(body.ticket, now);
        if (answer.allowed && answer.credits) await this.state.storage.put('credits', answer.credits);
        return json(200, answer);
      }
      case '/release':
        return json(200, { released: this.admission.release(body.leaseId) });
      case '/renew':
        return json(200, { renewed: this.admission.renew(body.leaseId, now) });
      case '/inflight':
        return json(200, { in_flight: this.admission.inFlight(url.searchParams.get('key')) });
      case '/evict':
        this.admission.free();
        this.admission = new Admission(policyText, 'policies/default.toml');
        this.restored = false;
        return json(200, { evicted: true });
      default:
        return json(404, { error: 'not_found' });
    }
  }
}

/** The Durable Object of one failure subject (`idFromName('ip:203.0.113.9')`). */
export class FailureBudget {
  constructor() {
    this.budgets = new FailureBudgets(policyText, 'policies/default.toml');
  }

  async fetch(request) {
    const { subject } = await request.json();
    const now = Date.now();
    switch (new URL(request.url).pathname) {
      case '/charge':
        return json(200, this.budgets.charge(subject, now));
      case '/refund':
        this.budgets.refund(subject, now);
        return json(200, { refunded: true });
      default:
        return json(404, { error: 'not_found' });
    }
  }
}

const failures = (env, subject, op) =>
  env.FAILURES.get(env.FAILURES.idFromName(`${subject.kind}:${subject.key}`))
    .fetch(`https://failures/${op}`, { method: 'POST', body: JSON.stringify({ subject }) })
    .then((r) => r.json());

/** Charges the attempt's subjects in the engine's order: the subjects charged, or the 429. */
async function chargeFailures(env, subjects) {
  const charged = [];
  for (const subject of subjects) {
    const answer = await failures(env, subject, 'charge');
    if (!answer.allowed) {
      await Promise.all(charged.map((s) => failures(env, s, 'refund')));
      return { refusal: answer };
    }
    charged.push(subject);
  }
  return { charged };
}

const stub = (env, keyId) => env.ADMISSION.get(env.ADMISSION.idFromName(keyId));
const ask = (env, keyId, path, value) =>
  stub(env, keyId).fetch(`https://admission${path}`, { method: 'POST', body: JSON.stringify(value) }).then((r) => r.json());

async function api(request, env, url) {
  let credentials;
  try {
    credentials = engine.parseCredentials(request.headers);
  } catch (e) {
    // The error carries the answer to send (401 / 400).
    if (e instanceof KeycelError && e.decision) return answerOf(e.decision);
    throw e;
  }
  const ip = request.headers.get('cf-connecting-ip');
  const record = records.get(credentials.clientId) ?? null;
  const account = url.pathname.split('/')[3];
  const action = request.method === 'GET' ? 'api.read' : 'api.write';
  const target = { action, account, method: request.method, path: url.pathname, ip };
  // Failures are counted by the subjects' Durable Objects, before argon2 runs here. With
  // nothing to charge (a cached secret of a valid key) `authorize` runs at once: no `await`
  // in between, so nothing evicts the cached secret first.
  const subjects = engine.failureSubjects(record, credentials, ip, Date.now());
  let charged = [];
  if (subjects) {
    const c = await chargeFailures(env, subjects);
    if (c.refusal) return new Response(c.refusal.body, { status: c.refusal.status, headers: { 'content-type': 'application/json', ...Object.fromEntries(c.refusal.headers) } });
    charged = c.charged;
  }
  const d = engine.authorize(record, credentials, target, Date.now());
  d.lease?.release(); // uncounted: the Durable Object counts
  // The secret verified (whatever the policy then decided): the charges go back.
  if (d.method !== null) await Promise.all(charged.map((s) => failures(env, s, 'refund')));
  if (!d.allowed) return answerOf(d);
  const cost = Number(url.searchParams.get('cost') ?? 1);
  const answer = await ask(env, record.id, '/admit', { ticket: engine.ticket(record, cost) });
  const headers = Object.fromEntries(answer.headers);
  if (!answer.allowed) return new Response(answer.body, { status: answer.status, headers: { 'content-type': 'application/json', ...headers } });
  try {
    const hold = Math.min(Number(url.searchParams.get('hold') ?? 0), 10_000);
    if (hold > 0) await sleep(hold);
    return json(200, { ok: true, keyId: record.id, creditsRemaining: answer.creditsRemaining }, headers);
  } finally {
    await ask(env, record.id, '/release', { leaseId: answer.leaseId });
  }
}

async function admin(request, env, url) {
  if (request.headers.get('x-admin-token') !== env.ADMIN_TOKEN) return json(401, { error: 'admin token required' });
  try {
    if (request.method === 'POST' && url.pathname === '/_keys') {
      const { spec, budget } = await request.json();
      const issued = engine.issueKey(spec, Date.now(), { hash: 'edge' });
      // The budget fields of the stored record (what `keycel key set-rate-limit` /
      // `set-credits` write).
      const record = budget ? KeyRecord.parse({ ...issued.record.toStorageJSON(), ...budget }) : issued.record;
      records.set(issued.clientId, record);
      return json(201, { clientId: issued.clientId, token: issued.token });
    }
    const off = url.pathname.match(/^\/_deactivate\/([^/]+)$/);
    if (request.method === 'POST' && off && records.has(off[1])) {
      // What `keycel key deactivate` writes: the record, inactive (its secret stays cached).
      records.set(off[1], KeyRecord.parse({ ...records.get(off[1]).toStorageJSON(), active: false }));
      return json(200, { deactivated: off[1] });
    }
    const m = url.pathname.match(/^\/_evict\/([^/]+)$/);
    if (request.method === 'POST' && m) return json(200, await ask(env, m[1], '/evict', {}));
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
    const inflight = url.pathname.match(/^\/_inflight\/([^/]+)$/);
    if (inflight) {
      const r = await stub(env, inflight[1]).fetch(`https://admission/inflight?key=${encodeURIComponent(inflight[1])}`);
      return json(200, await r.json());
    }
    if (url.pathname.startsWith('/_')) return admin(request, env, url);
    if (url.pathname.startsWith('/v1/accounts/')) return api(request, env, url);
    return json(404, { error: 'not_found' });
  },
};
