// Issue 13 in JS: a key created with its budget in one step (`rateLimit`, `credits` in the
// key spec of `Keyring.create` and `engine.issueKey`), parsed by core like the management
// API's POST /keys, validated before any write, and held to the delegation rule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engine, Keyring, MemoryDocumentStore } from 'keycel';
import { CHEAP, DEFAULT_POLICY, NOW, rejects, throwsKeycel } from './helpers.mjs';

const engine = new Engine(DEFAULT_POLICY);
const dump = (store) => JSON.stringify([...store.collections].map(([c, m]) => [c, [...m]]));
const AT = new Date(NOW).toISOString().replace('.000Z', 'Z');

test('Keyring.create takes rateLimit and credits: one write, version 1', async () => {
  const store = new MemoryDocumentStore();
  const ring = new Keyring(engine, store, { hash: CHEAP });
  const k = await ring.create(
    {
      name: 'metered',
      role: 'reader',
      rateLimit: { limit: 100, per: '1m', burst: 20 },
      credits: { remaining: 10000, refill: { amount: 500, interval: '1d' } },
    },
    { now: NOW },
  );
  assert.deepEqual(k.record.rate_limit, { limit: 100, per: '1m', burst: 20 });
  assert.deepEqual(k.record.credits, { remaining: 10000, refill: { amount: 500, interval: '1d' }, set_at: AT });
  assert.equal(k.record.version, 1);
  const stored = JSON.parse(await store.get('keys', k.clientId));
  assert.deepEqual(stored.rate_limit, { limit: 100, per: '1m', burst: 20 });
  const plain = await ring.create({ name: 'c', role: 'reader', credits: { remaining: 3 }, rateLimit: null }, { now: NOW });
  assert.equal(plain.record.credits.refill, null);
  assert.equal(plain.record.rate_limit ?? null, null);
});

test('a bad budget is invalid_record naming the field, and nothing is written', async () => {
  const store = new MemoryDocumentStore();
  const ring = new Keyring(engine, store, { hash: CHEAP });
  const before = dump(store);
  for (const [spec, field] of [
    [{ rateLimit: { limit: 0, per: '1m' } }, 'rate_limit.limit'],
    [{ rateLimit: { limit: 5, per: 'soon' } }, 'rate_limit.per'],
    [{ rateLimit: { limit: 5, per: '1m', brust: 1 } }, 'rate_limit.brust'],
    [{ credits: { remaining: -1 } }, 'credits.remaining'],
    [{ credits: { remaining: 5, refill: { amount: 0, interval: '1d' } } }, 'credits.refill.amount'],
    [{ credits: 'lots' }, 'credits'],
  ]) {
    const e = await rejects(ring.create({ name: 'k', role: 'reader', ...spec }, { now: NOW }), 'invalid_record');
    assert.equal(e.field, field, e.message);
  }
  assert.equal(dump(store), before);
});

test('issueKey takes the same budget, and a looser one than the actor\'s is exceeds_actor', () => {
  const issue = (spec, opts = {}) => engine.issueKey(spec, NOW, { hash: CHEAP, ...opts });
  const admin = issue({
    name: 'a',
    role: 'admin',
    rateLimit: { limit: 10, per: '1m', burst: 2 },
    credits: { remaining: 100, refill: { amount: 100, interval: '1d' } },
  });
  const as = { actor: { key: admin.record } };
  const within = { name: 'c', role: 'reader', rateLimit: { limit: 10, per: '1m', burst: 2 }, credits: { remaining: 100 } };
  for (const looser of [
    { rateLimit: { limit: 11, per: '1m', burst: 2 } },
    { rateLimit: { limit: 10, per: '1m', burst: 3 } },
    { rateLimit: null },
    { credits: { remaining: 101 } },
    { credits: null },
    { credits: { remaining: 5, refill: { amount: 10, interval: '1h' } } },
  ]) {
    const e = throwsKeycel(() => issue({ ...within, ...looser }, as), 'denied');
    assert.equal(e.decision.code, 'exceeds_actor', JSON.stringify(looser));
  }
  const ok = issue(within, as);
  assert.equal(JSON.parse(ok.recordJson).credits.remaining, 100);
});
