// The keyring over a host document store (issue 15): every operation Rust and Python have,
// async, over MemoryDocumentStore; conflicts; no hash in any public form.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Engine, KeycelError, Keyring, MemoryDocumentStore, DurableObjectDocumentStore, KeyRecord } from 'keycel';
import { CHEAP, DEFAULT_POLICY, NOW, rejects } from './helpers.mjs';

const engine = new Engine(DEFAULT_POLICY);

/** Every document in the store, for "no hash leaked / nothing written" checks. */
const dump = (store) => JSON.stringify([...store.collections].map(([c, m]) => [c, [...m]]));
const noHash = (value) => assert.ok(!JSON.stringify(value).includes('$argon2'), JSON.stringify(value));

async function setup() {
  const store = new MemoryDocumentStore();
  const ring = new Keyring(engine, store, { hash: CHEAP });
  const admin = await ring.create({ name: 'root', role: 'admin' }, { now: NOW });
  const adminActor = { key: (await ring.findKey(admin.clientId)).toStorageJSON() };
  return { store, ring, admin, adminActor };
}

describe('Keyring over MemoryDocumentStore', () => {
  test('parity: create, get, list with filters, every setter, rotate with grace, delete, users, explain', async () => {
    const { store, ring, admin, adminActor } = await setup();
    const as = { actor: adminActor, now: NOW };
    noHash(admin);
    assert.equal(admin.record.role, 'admin');
    assert.ok(admin.token.startsWith(`${admin.clientId}_`));
    const stored = KeyRecord.parse(await store.get('keys', admin.clientId));
    assert.equal(stored.id, admin.clientId, 'the store holds the storage form');

    const api = await ring.create({ name: 'svc', role: 'reader', accounts: ['acc_1'] }, as);
    await ring.putUser({ id: 'u_1', roles: ['viewer'], accounts: 'all' }, as);
    const pt = await ring.create({ name: 'mine', kind: 'personal', user: 'u_1', role: 'viewer' }, as);
    assert.deepEqual((await ring.list(null, as)).map((k) => k.id).sort(), [admin.clientId, api.clientId, pt.clientId].sort());
    assert.deepEqual((await ring.list({ kind: 'personal' }, as)).map((k) => k.id), [pt.clientId]);
    assert.deepEqual((await ring.list({ user: 'u_1' }, as)).map((k) => k.id), [pt.clientId]);

    let v = await ring.rename(api.clientId, 'svc-2', as);
    assert.equal(v.name, 'svc-2');
    assert.equal(v.version, 2);
    v = await ring.setDescription(api.clientId, 'billing', as);
    v = await ring.setRole(api.clientId, 'editor', as);
    v = await ring.setScopes(api.clientId, ['api.read'], as);
    v = await ring.setAccounts(api.clientId, ['acc_1', 'acc_2'], as);
    v = await ring.setExpiry(api.clientId, new Date(NOW + 86_400_000), as);
    assert.equal(v.expires_at, new Date(NOW + 86_400_000).toISOString().replace('.000Z', 'Z'));
    v = await ring.setExpiry(api.clientId, null, as);
    assert.equal(v.expires_at, null);
    v = await ring.setMaxConcurrent(api.clientId, 3, as);
    assert.equal(v.max_concurrent, 3);
    v = await ring.setMetadata(api.clientId, { team: 'a' }, as);
    v = await ring.setRateLimit(api.clientId, { limit: 10, per: '1m', burst: 2 }, as);
    assert.deepEqual(v.rate_limit, { limit: 10, per: '1m', burst: 2 });
    v = await ring.setCredits(api.clientId, { remaining: 100, refill: { amount: 100, interval: '1d' } }, as);
    assert.equal(v.credits.remaining, 100);
    assert.equal(v.credits.set_at, new Date(NOW).toISOString().replace('.000Z', 'Z'), 'granted now');
    await rejects(ring.setRateLimit(api.clientId, { limit: 0, per: 'soon' }, as), 'invalid_argument');
    v = await ring.setRateLimit(api.clientId, null, as);
    assert.equal(v.rate_limit ?? null, null, 'cleared (the public form leaves an unset budget out)');
    v = await ring.setCredits(api.clientId, null, as);
    v = await ring.describe(api.clientId, 'billing team', as);
    assert.equal(v.description, 'billing team');
    v = await ring.setActive(api.clientId, false, as);
    v = await ring.activate(api.clientId, as);
    v = await ring.deactivate(api.clientId, as);
    assert.equal(v.active, false);
    assert.deepEqual((await ring.list({ active: false }, as)).map((k) => k.id), [api.clientId]);
    v = await ring.activate(api.clientId, as);
    assert.equal(v.active, true);
    v = await ring.update(api.clientId, { name: 'both', description: 'two at once' }, as);
    assert.equal(v.version, 20, 'one version per write');
    assert.deepEqual(await ring.get(api.clientId, as), v);
    noHash(v);

    const rotated = await ring.rotate(api.clientId, { ...as, grace: '1h' });
    noHash(rotated);
    assert.notEqual(rotated.token, api.token);
    assert.ok(rotated.record.previous_secret_valid_until);

    const ex = await ring.explain(pt.clientId, as);
    assert.equal(ex.kind, 'personal');
    assert.equal(ex.user, 'u_1');

    assert.deepEqual(await ring.getUser('u_1', as), { schema: 1, id: 'u_1', roles: ['viewer'], accounts: 'all', version: 1 });
    assert.equal((await ring.listUsers(as)).length, 1);
    assert.equal(await ring.getUser('u_none', as), null);

    assert.equal(await ring.delete(api.clientId, as), true);
    await rejects(ring.get(api.clientId, as), 'not_found');
    assert.ok(await store.get('retired', api.clientId), 'the id is retired');
    assert.equal(await ring.removeUser('u_1', as), 1);
    assert.equal(await store.get('keys', pt.clientId), null);
    assert.equal(await store.get('users', 'u_1'), null);
    assert.deepEqual((await ring.list(null, as)).map((k) => k.id), [admin.clientId]);
  });

  test('management rules come from core: a viewer creates its own token, not an API token', async () => {
    const { ring, adminActor } = await setup();
    await ring.putUser({ id: 'u_v', roles: ['viewer'], accounts: 'all' }, { actor: adminActor, now: NOW });
    const pt = await ring.create({ name: 'v', kind: 'personal', user: 'u_v', role: 'viewer' }, { actor: adminActor, now: NOW });
    const viewer = { key: (await ring.findKey(pt.clientId)).toStorageJSON() };
    const own = await ring.create({ name: 'mine', kind: 'personal', user: 'u_v', role: 'viewer' }, { actor: viewer, now: NOW });
    assert.equal(own.record.user, 'u_v');
    const err = await rejects(ring.create({ name: 'api', role: 'reader' }, { actor: viewer, now: NOW }), 'denied');
    assert.equal(err.status, 403);
    // Operator-only keyring (no engine): keys may not act at all.
    const bare = new Keyring(null, ring.store, { hash: CHEAP });
    await rejects(bare.get(pt.clientId, { actor: viewer, now: NOW }), 'denied');
    assert.equal((await bare.get(pt.clientId, { now: NOW })).id, pt.clientId);
    await rejects(bare.explain(pt.clientId, { now: NOW }), 'config_error');
  });

  test('an account-limited admin cannot see or touch other accounts\' keys', async () => {
    const { ring, adminActor } = await setup();
    const as = { actor: adminActor, now: NOW };
    const limited = await ring.create({ name: 'acc1-admin', role: 'admin', accounts: ['acc_1'] }, as);
    const other = await ring.create({ name: 'acc2', role: 'reader', accounts: ['acc_2'] }, as);
    const mine = await ring.create({ name: 'acc1', role: 'reader', accounts: ['acc_1'] }, as);
    const la = { actor: { key: (await ring.findKey(limited.clientId)).toStorageJSON() }, now: NOW };
    const seen = (await ring.list(null, la)).map((k) => k.id);
    assert.ok(seen.includes(mine.clientId));
    assert.ok(!seen.includes(other.clientId), 'out-of-scope keys are left out of listings');
    await rejects(ring.get(other.clientId, la), 'not_found');
    await rejects(ring.rename(other.clientId, 'x', la), 'not_found');
    await rejects(ring.delete(other.clientId, la), 'not_found');
    assert.equal((await ring.get(other.clientId, as)).name, 'acc2', 'untouched');
  });

  test('racing writers: one wins, the other gets conflict and writes nothing', async () => {
    const { store, ring } = await setup();
    const k = await ring.create({ name: 'race', role: 'reader' }, { now: NOW });
    // A store whose reads are slow: both renames load version 1 before either commits.
    const slow = Object.create(store);
    slow.get = async (c, id) => {
      const d = await store.get(c, id);
      await new Promise((r) => setTimeout(r, 20));
      return d;
    };
    const ring2 = new Keyring(engine, slow, { hash: CHEAP });
    const before = await store.get('keys', k.clientId);
    const results = await Promise.allSettled([ring2.rename(k.clientId, 'one', { now: NOW }), ring2.rename(k.clientId, 'two', { now: NOW })]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    assert.equal(won.length, 1, JSON.stringify(results));
    assert.equal(lost.length, 1);
    assert.ok(lost[0].reason instanceof KeycelError);
    assert.equal(lost[0].reason.code, 'conflict');
    assert.equal(lost[0].reason.found, 2);
    const now = JSON.parse(await store.get('keys', k.clientId));
    assert.equal(now.version, 2);
    assert.equal(now.name, won[0].value.name);
    assert.notEqual(before, await store.get('keys', k.clientId));
  });

  test('typed errors; a failing store writes nothing; bad documents are store errors', async () => {
    const { store, ring, adminActor } = await setup();
    const as = { actor: adminActor, now: NOW };
    await rejects(ring.create({ name: '', role: 'reader' }, as), 'invalid_record');
    await rejects(ring.create({ name: 'x', role: 'no_such_role' }, as), 'invalid_record');
    await rejects(ring.get('kc_0000000000000000', as), 'not_found');
    await rejects(ring.update('kc_0000000000000000', { bogus: 1 }, as), 'invalid_argument');
    assert.throws(() => new Keyring(engine, { get() {} }), (e) => e instanceof KeycelError && e.code === 'invalid_argument');
    const k = await ring.create({ name: 'x', role: 'reader' }, as);
    const before = dump(store);
    const broken = Object.create(store);
    broken.put = async () => { throw new Error('disk full'); };
    const err = await rejects(new Keyring(engine, broken, { hash: CHEAP }).rename(k.clientId, 'y', as), 'store_error');
    assert.match(err.message, /disk full/);
    assert.equal(dump(store), before, 'nothing written');
    await store.put('keys', 'kc_zzzzzzzzzzzzzzzz', '{"not":"a record"}');
    await rejects(ring.list(null, as), 'store_error');
    noHash(err.message);
  });

  test('DurableObjectDocumentStore maps the protocol onto DO storage', async () => {
    const m = new Map();
    const storage = {
      get: async (k) => m.get(k),
      put: async (k, v) => { m.set(k, v); },
      delete: async (k) => m.delete(k),
      list: async ({ prefix }) => new Map([...m].filter(([k]) => k.startsWith(prefix)).sort()),
    };
    const ring = new Keyring(engine, new DurableObjectDocumentStore(storage), { hash: CHEAP });
    const k = await ring.create({ name: 'do', role: 'reader' }, { now: NOW });
    assert.ok(m.has(`keycel/keys/${k.clientId}`));
    assert.equal((await ring.list(null, { now: NOW })).length, 1);
    await ring.delete(k.clientId, { now: NOW });
    assert.ok(m.has(`keycel/retired/${k.clientId}`));
    assert.ok(!m.has(`keycel/keys/${k.clientId}`));
  });
});
