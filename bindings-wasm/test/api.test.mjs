// The API of the built package, and every seed scenario (Finout, Finta, the financial-data
// API), through the Node entry point.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createRequire } from 'node:module';
import * as keycel from 'keycel';
import { Engine, KeyRecord, UserRecord, KeycelError, Credentials, Lease, issueKey, rotateKey, parseCredentials } from 'keycel';
import { CHEAP, DEFAULT_POLICY, NOW, basic, throwsKeycel } from './helpers.mjs';

const engine = new Engine(DEFAULT_POLICY, { origin: 'policies/default.toml' });
const issue = (spec, opts = {}) => engine.issueKey(spec, NOW, { hash: CHEAP, ...opts });
const READ = { action: 'api.read', account: 'acc_1', method: 'GET', path: '/v1/accounts/acc_1/data' };
const WRITE = { action: 'api.write', account: 'acc_1', method: 'POST', path: '/v1/accounts/acc_1/data' };

/** parseCredentials + authorize, answering credential failures with their decision. */
function call(eng, headers, record, request, now = NOW, user = null) {
  let creds;
  try {
    creds = eng.parseCredentials(headers);
  } catch (e) {
    if (e instanceof KeycelError && e.decision) return e.decision;
    throw e;
  }
  const d = eng.authorize(record, creds, request, now, user);
  d.lease?.release();
  return d;
}

describe('package', () => {
  test('CommonJS and ES module entry points are the same build', () => {
    const cjs = createRequire(import.meta.url)('keycel');
    assert.equal(cjs.Engine, Engine);
    assert.equal(cjs.KeycelError, KeycelError);
    assert.equal(typeof keycel.version(), 'string');
    for (const name of ['Engine', 'KeyRecord', 'UserRecord', 'Credentials', 'Lease', 'KeycelError', 'issueKey', 'rotateKey', 'parseCredentials']) {
      assert.ok(name in keycel, `${name} exported`);
    }
  });

  test('Engine from a plain object policy', () => {
    const eng = new Engine({
      version: 1,
      scopes: { 'api.read': 'read', 'api.write': 'write' },
      roles: { reader: ['api.read'] },
      rules: [{ id: 'scope', effect: 'allow', actions: ['*'], when: 'has_scope(request.action)' }],
    });
    const k = eng.issueKey({ name: 'o', role: 'reader' }, NOW, { hash: CHEAP });
    assert.equal(call(eng, [['Authorization', `Bearer ${k.token}`]], k.record, { action: 'api.read' }).status, 200);
    assert.equal(call(eng, [['Authorization', `Bearer ${k.token}`]], k.record, { action: 'api.write' }).status, 403);
  });

  test('Engine.defaultPolicy() is the shipped policy', () => {
    const eng = Engine.defaultPolicy();
    assert.match(eng.origin, /default\.toml/);
  });
});

describe('credentials', () => {
  const k = issue({ name: 'creds', role: 'reader' });
  test('Basic, Bearer and the header pair; Headers, Map, pairs and objects', () => {
    const forms = [
      [{ authorization: basic(`${k.token}:`) }, 'basic'],
      [{ authorization: basic(k.token) }, 'basic'],
      [[['Authorization', basic(k.clientId, k.secretKey)]], 'basic'],
      [new Headers({ authorization: `Bearer ${k.token}` }), 'bearer'],
      [new Map([['X-Keycel-Client-Id', k.clientId], ['x-keycel-secret-key', k.secretKey]]), 'header_pair'],
    ];
    for (const [headers, method] of forms) {
      const c = engine.parseCredentials(headers);
      assert.ok(c instanceof Credentials);
      assert.equal(c.clientId, k.clientId);
      assert.equal(c.method, method);
      assert.deepEqual(JSON.parse(JSON.stringify(c)), { clientId: k.clientId, method });
      assert.ok(!String(c).includes(k.secretKey) && !JSON.stringify(c).includes(k.secretKey), 'secret never shown');
      assert.equal(Object.values(c).some((v) => typeof v === 'string' && v.includes(k.secretKey)), false);
    }
  });

  test('typed failures carry the decision to answer with', () => {
    let e = throwsKeycel(() => parseCredentials({}), 'missing_credentials');
    assert.equal(e.status, 401);
    assert.equal(e.decision.code, null);
    assert.match(e.decision.headers['WWW-Authenticate'], /Basic realm="keycel"/);
    e = throwsKeycel(() => engine.parseCredentials({ authorization: `Bearer ${k.token.slice(0, -1)}x` }), 'invalid_credentials');
    assert.equal(e.decision.status, 401);
    assert.equal(e.decision.message, 'Invalid username/account key');
    assert.equal(e.decision.body, '{"error":"invalid_token","message":"Invalid username/account key"}');
    e = throwsKeycel(() => engine.parseCredentials([
      ['Authorization', `Bearer ${k.token}`], ['x-keycel-client-id', k.clientId], ['x-keycel-secret-key', k.secretKey],
    ]), 'invalid_request');
    assert.equal(e.status, 400);
    throwsKeycel(() => engine.parseCredentials({ authorization: `Bearer ${'a'.repeat(10_000)}` }), 'invalid_credentials');
    throwsKeycel(() => engine.parseCredentials({ authorization: 'Basic !!!' }), 'invalid_request');
    assert.ok(!e.message.includes(k.secretKey));
  });

  test('options and the Finout header names', () => {
    const c = parseCredentials({ 'x-finout-client-id': k.clientId, 'x-finout-secret-key': k.secretKey },
      { clientIdHeader: 'x-finout-client-id', secretHeader: 'x-finout-secret-key' });
    assert.equal(c.method, 'header_pair');
    throwsKeycel(() => parseCredentials({ authorization: `Bearer ${k.token}` }, { prefix: 'acme' }), 'invalid_credentials');
    throwsKeycel(() => parseCredentials({}, { prefix: 'Bad_' }), 'invalid_argument');
    throwsKeycel(() => parseCredentials({}, { clientIdHeader: 'bad header' }), 'invalid_argument');
    throwsKeycel(() => parseCredentials({}, { nope: 1 }), 'invalid_argument');
  });
});

describe('authorize', () => {
  test('decision object, cache, needsRehash, lease', () => {
    const k = issue({ name: 'auth', role: 'reader' });
    const creds = engine.parseCredentials({ authorization: `Bearer ${k.token}` });
    const first = engine.authorize(k.record, creds, READ, NOW);
    assert.deepEqual(Object.keys(first), ['allowed', 'status', 'code', 'message', 'headers', 'keyId', 'matchedRules',
      'reason', 'body', 'lease', 'method', 'needsRehash', 'cacheHit', 'viaPreviousSecret', 'rehash']);
    assert.equal(first.allowed, true);
    assert.equal(first.status, 200);
    assert.equal(first.code, null);
    assert.equal(first.keyId, k.clientId);
    assert.deepEqual(first.matchedRules, ['scope-grants-action']);
    assert.equal(first.body, '{"ok":true}');
    assert.equal(first.method, 'bearer');
    assert.equal(first.cacheHit, false);
    assert.equal(first.needsRehash, true, 'cheap test hash differs from the policy preset');
    assert.ok(first.lease instanceof Lease);
    assert.equal(first.lease.keyId, k.clientId);
    assert.equal(first.lease.expiresAt, Math.floor(NOW / 1000) * 1000 + 60_000);
    assert.equal(engine.inFlight(k.clientId), 1);
    assert.equal(first.lease.release(), true);
    assert.equal(first.lease.release(), false, 'second release is a no-op');
    assert.equal(engine.inFlight(k.clientId), 0);
    const second = engine.authorize(k.record, creds, READ, new Date(NOW));
    assert.equal(second.cacheHit, true, 'a warm engine skips argon2');
    second.lease.release();
    const third = engine.authorize(k.recordJson, creds, READ, '2026-11-23T12:00:01Z');
    assert.equal(third.status, 200, 'record as JSON text');
    third.lease.release();
    const fourth = engine.authorize(JSON.parse(k.recordJson), creds, READ, NOW);
    assert.equal(fourth.status, 200, 'record as plain object');
    fourth.lease.release();
    assert.ok(engine.cacheSize >= 1);
  });

  test('cache off: never a cache hit', () => {
    const eng = new Engine(DEFAULT_POLICY, { cacheCapacity: 0 });
    const k = eng.issueKey({ name: 'nocache', role: 'reader' }, NOW, { hash: CHEAP });
    const creds = eng.parseCredentials({ authorization: `Bearer ${k.token}` });
    for (let i = 0; i < 2; i++) {
      const d = eng.authorize(k.record, creds, READ, NOW);
      assert.equal(d.cacheHit, false);
      d.lease.release();
    }
    assert.equal(eng.cacheSize, 0);
  });

  test('unknown client id, wrong secret, inactive, expired: one 401', () => {
    const k = issue({ name: 'x', role: 'reader', expiresIn: '1d' });
    const other = issue({ name: 'y', role: 'reader' });
    const inactive = KeyRecord.parse({ ...JSON.parse(k.recordJson), active: false, version: 2 });
    const cases = [
      [{ authorization: `Bearer ${k.token}` }, null, NOW],
      [[['x-keycel-client-id', k.clientId], ['x-keycel-secret-key', other.secretKey]], k.record, NOW],
      [{ authorization: `Bearer ${k.token}` }, inactive, NOW],
      [{ authorization: `Bearer ${k.token}` }, k.record, NOW + 2 * 86_400_000],
      [{ authorization: `Bearer ${k.token}` }, other.record, NOW],
    ];
    const bodies = new Set();
    for (const [headers, record, now] of cases) {
      const d = call(engine, headers, record, READ, now);
      assert.equal(d.status, 401, d.reason);
      assert.equal(d.code, 'invalid_token');
      assert.equal(d.message, 'Invalid username/account key');
      assert.equal(d.lease, null);
      bodies.add(d.body + JSON.stringify(d.headers));
    }
    assert.equal(bodies.size, 1, 'every failure looks the same to the client');
  });

  test('decide: the policy alone', () => {
    const k = issue({ name: 'd', role: 'reader' });
    assert.equal(engine.decide(k.record, READ, NOW).status, 200);
    const d = engine.decide(k.record, WRITE, NOW);
    assert.equal(d.status, 403);
    assert.equal(d.code, 'insufficient_scope');
    assert.equal(d.lease, null);
    assert.equal(engine.decide(k.record, { action: 'not a scope!' }, NOW).status, 400, 'bad action: a decision, not an error');
  });
});

describe('seed 000-002 (Finout)', () => {
  test('client id + secret in two x-finout-* headers', () => {
    const eng = new Engine(`${DEFAULT_POLICY}\n[defaults.credentials]\nclient_id_header = "x-finout-client-id"\nsecret_header = "x-finout-secret-key"\n`);
    const k = eng.issueKey({ name: 'finout', role: 'reader' }, NOW, { hash: CHEAP });
    const d = call(eng, { 'X-Finout-Client-Id': k.clientId, 'X-Finout-Secret-Key': k.secretKey }, k.record, READ);
    assert.equal(d.status, 200);
    assert.equal(d.method, 'header_pair');
    assert.equal(call(eng, { 'x-keycel-client-id': k.clientId, 'x-keycel-secret-key': k.secretKey }, k.record, READ).status, 401);
  });

  test('a live holder that renews keeps its slot; one that stops is reclaimed (issue 12)', () => {
    const k = issue({ name: 'renewing', role: 'reader', maxConcurrent: 2 });
    const creds = engine.parseCredentials({ authorization: `Bearer ${k.token}` });
    const live = engine.authorize(k.record, creds, READ, NOW).lease;
    const lost = engine.authorize(k.record, creds, READ, NOW).lease;
    for (let s = 30; s <= 300; s += 30) assert.equal(live.renew(NOW + s * 1000), true);
    assert.equal(live.expiresAt, Math.floor(NOW / 1000) * 1000 + 360_000);
    // 300 s later: the renewed lease still counts, the lost one (60 s TTL) was reclaimed.
    const next = engine.authorize(k.record, creds, READ, NOW + 300_000);
    assert.equal(next.status, 200);
    assert.equal(engine.authorize(k.record, creds, READ, NOW + 300_000).status, 429, 'the renewed lease was reclaimed');
    assert.equal(lost.renew(NOW + 300_000), false, 'a reclaimed lease cannot be renewed');
    assert.equal(live.release(), true);
    assert.equal(live.renew(NOW + 300_000), false, 'released');
    next.lease.release();
    assert.equal(engine.inFlight(k.clientId), 0);
  });

  test('five concurrent requests per API key; 429 with Retry-After; leases expire', () => {
    const k = issue({ name: 'busy', role: 'reader' });
    const creds = engine.parseCredentials({ authorization: `Bearer ${k.token}` });
    const held = [];
    for (let i = 0; i < 5; i++) {
      const d = engine.authorize(k.record, creds, READ, NOW);
      assert.equal(d.status, 200);
      held.push(d.lease);
    }
    const busy = engine.authorize(k.record, creds, READ, NOW);
    assert.equal(busy.status, 429);
    assert.equal(busy.code, 'too_many_requests');
    assert.equal(busy.headers['Retry-After'], '1');
    assert.equal(busy.lease, null);
    assert.equal(engine.inFlight(k.clientId), 5);
    held.pop().release();
    const again = engine.authorize(k.record, creds, READ, NOW);
    assert.equal(again.status, 200);
    held.push(again.lease);
    // Never released (a lost handle): after the 60 s lease TTL the slots come back.
    const later = engine.authorize(k.record, creds, READ, NOW + 61_000);
    assert.equal(later.status, 200);
    later.lease.release();
    assert.equal(engine.reclaimExpiredLeases(NOW + 61_000), 0, 'the full key reclaimed its own expired leases');
    for (const l of held) assert.equal(l.release(), false, 'already reclaimed');
    const own = issue({ name: 'limit2', role: 'reader', maxConcurrent: 2 });
    const c2 = engine.parseCredentials({ authorization: `Bearer ${own.token}` });
    const a = engine.authorize(own.record, c2, READ, NOW);
    const b = engine.authorize(own.record, c2, READ, NOW);
    assert.equal(engine.authorize(own.record, c2, READ, NOW).status, 429, 'the key\'s own limit');
    a.lease.release();
    b.lease.release();
  });

  test('only admins create API tokens; personal tokens for oneself', () => {
    const user = { id: 'u_viewer', roles: ['viewer'], accounts: 'all' };
    const viewer = issue({ name: 'mine', kind: 'personal', user: 'u_viewer', role: 'viewer' }, { owner: user });
    const admin = issue({ name: 'root', role: 'admin' });
    const denied = throwsKeycel(() => issue({ name: 'api', role: 'reader' }, { actor: { key: viewer.record, user } }), 'denied');
    assert.equal(denied.status, 403);
    assert.equal(denied.decision.allowed, false);
    const made = issue({ name: 'api', role: 'reader' }, { actor: { key: admin.record } });
    assert.equal(made.record.kind, 'api');
    const own = issue({ name: 'mine2', kind: 'personal', user: 'u_viewer', role: 'viewer' }, { owner: user, actor: { key: viewer.record, user } });
    assert.equal(own.record.user, 'u_viewer');
    assert.equal(own.audit[0].action, 'keys.create');
    assert.equal(own.audit[0].actor, `key:${viewer.clientId}`);
  });

  test('a personal token carries its user\'s current roles and dies with the user', () => {
    const owner = UserRecord.parse({ id: 'u_ed', roles: ['editor'], accounts: 'all' });
    const k = issue({ name: 'pt', kind: 'personal', user: 'u_ed', role: 'editor' }, { owner });
    const h = { authorization: `Bearer ${k.token}` };
    assert.equal(call(engine, h, k.record, WRITE, NOW, owner).status, 200);
    const demoted = UserRecord.parse({ id: 'u_ed', roles: ['reader'], accounts: 'all', version: 2 });
    assert.equal(call(engine, h, k.record, WRITE, NOW, demoted).status, 403, 'never exceeds the user');
    assert.equal(call(engine, h, k.record, READ, NOW, demoted).status, 200);
    const narrowed = UserRecord.parse({ id: 'u_ed', roles: ['editor'], accounts: ['acc_2'], version: 3 });
    assert.equal(call(engine, h, k.record, READ, NOW, narrowed).status, 404, 'data access follows the user');
    assert.equal(call(engine, h, k.record, READ, NOW, null).status, 401, 'user removed');
    throwsKeycel(() => issue({ name: 'pt2', kind: 'personal', user: 'u_ed', role: 'admin' }, { owner }), 'invalid_record');
    throwsKeycel(() => issue({ name: 'pt3', kind: 'personal', user: 'u_none', role: 'viewer' }), 'invalid_record');
  });

  test('the secret is shown once and never stored', () => {
    const k = issue({ name: 'once', role: 'reader' });
    assert.match(k.token, /^kc_[0-9A-Za-z]{16}_[0-9A-Za-z]{38}$/);
    assert.equal(k.token, `${k.clientId}_${k.secretKey}`);
    assert.ok(!k.recordJson.includes(k.secretKey));
    assert.ok(!JSON.stringify(k.record).includes(k.secretKey));
    assert.ok(!JSON.stringify(k.audit).includes(k.secretKey));
    assert.match(JSON.parse(k.recordJson).secret_hash, /^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
  });
});

describe('seed 003 (Finta)', () => {
  test('account scope: out of scope answers exactly like a missing resource', () => {
    const k = issue({ name: 'scoped', role: 'reader', accounts: ['acc_1', 'acc_3'] });
    const h = { authorization: `Bearer ${k.token}` };
    assert.equal(call(engine, h, k.record, READ).status, 200);
    const d = call(engine, h, k.record, { ...READ, account: 'acc_2' });
    assert.equal(d.status, 404);
    assert.equal(d.body, engine.notFoundBody());
    assert.deepEqual(d.headers, {});
    const all = issue({ name: 'all', role: 'reader', accounts: 'all' });
    assert.equal(call(engine, { authorization: `Bearer ${all.token}` }, all.record, { ...READ, account: 'acc_created_later' }).status, 200);
  });

  test('scope edits take effect on the very next request', () => {
    const k = issue({ name: 'edit', role: 'reader', accounts: 'all' });
    const h = { authorization: `Bearer ${k.token}` };
    assert.equal(call(engine, h, k.record, READ).status, 200);
    const edited = KeyRecord.parse({ ...JSON.parse(k.recordJson), accounts: ['acc_9'], version: 2 });
    assert.equal(call(engine, h, edited, READ).status, 404, 'cache holds the secret check, never the key state');
  });

  test('rotate: new secret, old one dead at once, name and scope kept; or a grace period', () => {
    const k = issue({ name: 'rot', role: 'reader', accounts: ['acc_1'] });
    const r = engine.rotateKey(k.record, NOW + 1000, { hash: CHEAP });
    assert.equal(r.clientId, k.clientId);
    assert.notEqual(r.token, k.token);
    assert.equal(r.record.version, 2);
    assert.equal(r.record.name, 'rot');
    assert.deepEqual(JSON.parse(r.recordJson).accounts, ['acc_1']);
    assert.equal(call(engine, { authorization: `Bearer ${k.token}` }, k.record, READ).status, 200, 'warm the cache with the old secret');
    assert.equal(call(engine, { authorization: `Bearer ${k.token}` }, r.record, READ).status, 401, 'old secret dead at once');
    assert.equal(call(engine, { authorization: `Bearer ${r.token}` }, r.record, READ).status, 200);
    const g = rotateKey(k.record, NOW, { grace: '1h', hash: CHEAP });
    const old = call(engine, { authorization: `Bearer ${k.token}` }, g.record, READ);
    assert.equal(old.status, 200);
    assert.equal(old.viaPreviousSecret, true);
    assert.equal(call(engine, { authorization: `Bearer ${k.token}` }, g.record, READ, NOW + 3_601_000).status, 401, 'grace over');
    assert.equal(g.audit[0].action, 'keys.rotate');
  });

  test('delete: the record is gone and the key answers 401', () => {
    const k = issue({ name: 'del', role: 'reader' });
    assert.equal(call(engine, { authorization: `Bearer ${k.token}` }, null, READ).status, 401);
  });
});

describe('seed 004 (financial-data API)', () => {
  test('Basic with the key as user and an empty or absent password', () => {
    const k = issue({ name: 'basic', role: 'reader' });
    for (const h of [basic(`${k.token}:`), basic(k.token)]) {
      const d = call(engine, { Authorization: h }, k.record, READ);
      assert.equal(d.status, 200);
      assert.equal(d.method, 'basic');
    }
  });

  test('admin.* scopes are honoured only on the Administration API', () => {
    const k = issue({ name: 'adm', role: 'admin' });
    const h = { authorization: basic(`${k.token}:`) };
    const outside = call(engine, h, k.record, { action: 'admin.account.create', path: '/v1/accounts' });
    assert.equal(outside.status, 403);
    assert.deepEqual(outside.matchedRules, ['admin-scopes-only-on-admin-api']);
    assert.equal(call(engine, h, k.record, { action: 'admin.account.create', path: '/admin/accounts' }).status, 200);
  });

  test('inactive keys and bad keys answer 401 "Invalid username/account key"', () => {
    const k = issue({ name: 'off', role: 'reader', active: false });
    const d = call(engine, { authorization: basic(`${k.token}:`) }, k.record, READ);
    assert.equal(d.status, 401);
    assert.equal(d.message, 'Invalid username/account key');
    const bad = call(engine, { authorization: basic('kc_notakey:') }, k.record, READ);
    assert.equal(bad.status, 401);
    assert.equal(bad.message, 'Invalid username/account key');
  });
});

describe('bad input never kills the instance', () => {
  const k = issue({ name: 'bad', role: 'reader' });
  const creds = engine.parseCredentials({ authorization: `Bearer ${k.token}` });

  test('engine construction', () => {
    throwsKeycel(() => new Engine(42), 'invalid_argument');
    throwsKeycel(() => new Engine(null), 'invalid_argument');
    let e = throwsKeycel(() => new Engine('version = [', { origin: 'broken.toml' }), 'policy_error');
    assert.equal(e.file, 'broken.toml');
    throwsKeycel(() => new Engine({ version: 2 }), 'policy_error');
    e = throwsKeycel(() => new Engine(`${DEFAULT_POLICY}\n[[rules]]\nid = "bad"\neffect = "allow"\nactions = ["api.read"]\nwhen = "nope(1)"\n`), 'policy_error');
    assert.equal(e.rule, 'bad');
    assert.equal(typeof e.line, 'number');
    throwsKeycel(() => new Engine(DEFAULT_POLICY, { nope: 1 }), 'invalid_argument');
    throwsKeycel(() => new Engine(DEFAULT_POLICY, { cacheCapacity: -1 }), 'invalid_argument');
    const deep = `${'('.repeat(2000)}true${')'.repeat(2000)}`;
    const raised = DEFAULT_POLICY.replace('version = 1\n', 'version = 1\n[limits]\nmax_nesting = 5000\nmax_depth = 5000\nmax_expression_bytes = 20000\n');
    throwsKeycel(() => new Engine(`${raised}\n[[rules]]\nid = "deep"\neffect = "allow"\nactions = ["api.read"]\nwhen = "${deep}"\n`), 'policy_error');
    const cyclic = { version: 1 };
    cyclic.self = cyclic;
    throwsKeycel(() => new Engine(cyclic), 'invalid_argument');
  });

  test('records', () => {
    for (const v of ['x', '{}', '[]', '{"schema":1}', 42, null, undefined, true, 'a'.repeat(2 << 20)]) {
      const code = typeof v === 'string' || (v !== null && typeof v === 'object') ? 'invalid_record' : 'invalid_argument';
      throwsKeycel(() => KeyRecord.parse(v), code);
    }
    const good = JSON.parse(k.recordJson);
    for (const [field, value] of [['id', 'nope'], ['schema', 2], ['secret_hash', '$argon2i$x'], ['kind', 'robot'], ['version', 0], ['extra', 1], ['max_concurrent', 0], ['scopes', ['BAD SCOPE']]]) {
      const e = throwsKeycel(() => KeyRecord.parse({ ...good, [field]: value }), 'invalid_record');
      assert.equal(typeof e.field, 'string');
    }
    throwsKeycel(() => UserRecord.parse({ id: '', roles: [], accounts: 'all' }), 'invalid_record');
    throwsKeycel(() => UserRecord.parse({ id: 'u', roles: [], accounts: 'some' }), 'invalid_record');
  });

  test('headers', () => {
    for (const h of [42, 'str', [['a']], [['a', 'b', 'c']], { a: 1 }, [[1, 'x']], true]) {
      throwsKeycel(() => engine.parseCredentials(h), 'invalid_argument');
    }
    const many = Array.from({ length: 2000 }, (_, i) => [`x-h-${i}`, 'v']);
    throwsKeycel(() => engine.parseCredentials(many), 'invalid_argument');
    throwsKeycel(() => engine.parseCredentials(null), 'missing_credentials');
    throwsKeycel(() => engine.parseCredentials({ authorization: 'Bearer \u0000\uffff' }), 'invalid_credentials');
  });

  test('authorize arguments', () => {
    throwsKeycel(() => engine.authorize(k.record, {}, READ, NOW), 'invalid_argument');
    throwsKeycel(() => engine.authorize(k.record, 'creds', READ, NOW), 'invalid_argument');
    throwsKeycel(() => engine.authorize(42, creds, READ, NOW), 'invalid_argument');
    throwsKeycel(() => engine.authorize(k.record, creds, READ, NOW, 42), 'invalid_argument');
    for (const req of [null, undefined, 42, [], 'not json', {}, { action: 5 }, { action: 'api.read', bogus: 1 },
      { action: 'api.read', account: 5 }, { action: 'api.read', attributes: [] }, { action: 'api.read', attributes: { n: 10n } }]) {
      throwsKeycel(() => engine.authorize(k.record, creds, req, NOW), 'invalid_argument');
    }
    for (const now of [NaN, Infinity, -Infinity, 1e20, -1e20, 'garbage', {}, null, undefined, '2026-13-01T00:00:00Z']) {
      throwsKeycel(() => engine.authorize(k.record, creds, READ, now), 'invalid_time');
    }
    const huge = engine.authorize(k.record, creds, { action: 'api.read', attributes: { big: 'x'.repeat(5000) } }, NOW);
    assert.equal(huge.status, 400, 'oversized attributes: a decision, not a crash');
  });

  test('freed and reused handles', () => {
    const c = engine.parseCredentials({ authorization: `Bearer ${k.token}` });
    c.free();
    throwsKeycel(() => engine.authorize(k.record, c, READ, NOW), 'invalid_argument');
    const r = KeyRecord.parse(k.recordJson);
    r.free();
    throwsKeycel(() => r.id, 'invalid_argument');
  });

  test('key issuing arguments', () => {
    for (const spec of [null, 42, {}, { name: 'x' }, { name: '', role: 'reader' }, { name: 'x', role: 'reader', kind: 'robot' },
      { name: 'x', role: 'reader', expiresIn: 'soon' }, { name: 'x', role: 'reader', extra: 1 }, { name: 'x', role: 'reader', user: 'u' },
      { name: 'x', role: 'reader', accounts: 'some' }, { name: 'x', role: 'reader', maxConcurrent: 0 }]) {
      assert.throws(() => issueKey(spec, NOW, { hash: CHEAP }), KeycelError);
    }
    throwsKeycel(() => issueKey({ name: 'x', role: 'reader' }, NOW, { hash: { mCost: 1, tCost: 1, pCost: 1 } }), 'hash_error');
    throwsKeycel(() => issueKey({ name: 'x', role: 'reader' }, NOW, { hash: 'fastest' }), 'invalid_argument');
    throwsKeycel(() => issueKey({ name: 'x', role: 'reader' }, NOW, { prefix: 'BAD' }), 'invalid_argument');
    // A role the policy does not define is an invalid record, naming the field.
    const e = throwsKeycel(() => engine.issueKey({ name: 'x', role: 'no_such_role' }, NOW, { hash: CHEAP }), 'invalid_record');
    assert.match(e.message, /role/);
    throwsKeycel(() => engine.rotateKey(k.record, NOW, { grace: 'soon' }), 'invalid_argument');
    throwsKeycel(() => engine.rotateKey(k.record, NOW, { actor: 42 }), 'invalid_argument');
  });

  test('random garbage headers and requests', () => {
    let seed = 7;
    const rnd = (n) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const str = () => String.fromCharCode(...Array.from({ length: rnd(80) }, () => rnd(0x3000)));
    for (let i = 0; i < 3000; i++) {
      const scheme = ['Basic ', 'Bearer ', 'basic ', '', 'Digest '][rnd(5)];
      const headers = [['authorization', scheme + str()]];
      if (rnd(3) === 0) headers.push(['x-keycel-client-id', str()], ['x-keycel-secret-key', str()]);
      try {
        engine.parseCredentials(headers);
      } catch (e) {
        assert.ok(e instanceof KeycelError, e.message);
      }
      const d = engine.decide(k.record, { action: str(), account: str(), path: str(), ip: str() }, NOW);
      assert.equal(typeof d.status, 'number');
    }
  });

  test('the instance is still alive', () => {
    const d = engine.authorize(k.record, creds, READ, NOW);
    assert.equal(d.status, 200);
    d.lease.release();
  });
});
