// Issue 11 through the built npm package: a key acting through management never creates or
// takes over a key that exceeds itself, and an inactive, expired, orphaned or rotated-past-
// grace actor is refused. The host passes the acting key as its store holds it now.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engine, KeyRecord } from 'keycel';
import { CHEAP, DEFAULT_POLICY, NOW, throwsKeycel } from './helpers.mjs';

const engine = new Engine(DEFAULT_POLICY, { origin: 'policies/default.toml' });
const issue = (spec, opts = {}) => engine.issueKey(spec, NOW, { hash: CHEAP, ...opts });
const HOUR = 3600 * 1000;

test('an account-limited admin cannot create an all-accounts key', () => {
  const admin = issue({ name: 'a1', role: 'admin', accounts: ['acc_1'] });
  const e = throwsKeycel(() => issue({ name: 'wide', role: 'reader', accounts: 'all' }, { actor: { key: admin.record } }), 'denied');
  assert.equal(e.status, 403);
  assert.equal(e.decision.code, 'exceeds_actor');
  const ok = issue({ name: 'narrow', role: 'reader', accounts: ['acc_1'] }, { actor: { key: admin.record } });
  assert.deepEqual(JSON.parse(ok.recordJson).accounts, ['acc_1']);
});

test('an account-limited admin rotating another account\'s key gets not_found, like a missing key', () => {
  const admin = issue({ name: 'a1', role: 'admin', accounts: ['acc_1'] });
  const other = issue({ name: 'o', role: 'reader', accounts: ['acc_2'] });
  const e = throwsKeycel(() => engine.rotateKey(other.record, NOW, { hash: CHEAP, actor: { key: admin.record } }), 'not_found');
  assert.equal(e.message, `not found: ${other.clientId}`);
  const mine = issue({ name: 'm', role: 'reader', accounts: ['acc_1'] });
  engine.rotateKey(mine.record, NOW, { hash: CHEAP, actor: { key: admin.record } });
});

test('keys.create does not mint keys.create.*', () => {
  const root = { id: 'root', roles: ['admin'], accounts: 'all' };
  const me = issue({ name: 'm', role: 'reader', scopes: ['keys.create', 'keys.manage_all'] });
  const spec = { name: 't', kind: 'personal', user: 'root', role: 'reader', scopes: ['keys.create.*'] };
  const e = throwsKeycel(() => issue(spec, { owner: root, actor: { key: me.record } }), 'denied');
  assert.equal(e.decision.code, 'insufficient_scope');
});

test('a short-lived token cannot mint a longer-lived one', () => {
  const user = { id: 'v', roles: ['viewer'], accounts: 'all' };
  const me = issue({ name: 's', kind: 'personal', user: 'v', role: 'viewer', expiresIn: '1h' }, { owner: user });
  const forever = { name: 'f', kind: 'personal', user: 'v', role: 'viewer' };
  const e = throwsKeycel(() => issue(forever, { owner: user, actor: { key: me.record, user } }), 'denied');
  assert.equal(e.decision.code, 'exceeds_actor');
  issue({ ...forever, expiresIn: '30m' }, { owner: user, actor: { key: me.record, user } });
});

test('stale actors are refused: inactive, expired, orphaned, rotated past grace', () => {
  const reader = { name: 'x', role: 'reader' };
  const inactive = issue({ name: 'i', role: 'admin', active: false });
  assert.equal(throwsKeycel(() => issue(reader, { actor: { key: inactive.record } }), 'denied').status, 401);
  const expiring = issue({ name: 'e', role: 'admin', expiresIn: '1h' });
  const later = NOW + 2 * HOUR;
  const e = throwsKeycel(() => engine.issueKey(reader, later, { hash: CHEAP, actor: { key: expiring.record } }), 'denied');
  assert.equal(e.status, 401);
  const user = { id: 'gone', roles: ['admin'], accounts: 'all' };
  const orphan = issue({ name: 'o', kind: 'personal', user: 'gone', role: 'admin' }, { owner: user });
  assert.equal(throwsKeycel(() => issue(reader, { actor: { key: orphan.record } }), 'denied').status, 401);
  // Rotated: the host now stores the rotated record; the old object must not act on it.
  const admin = issue({ name: 'a', role: 'admin' });
  const rotated = engine.rotateKey(admin.record, NOW, { hash: CHEAP });
  const target = KeyRecord.parse(JSON.parse(rotated.recordJson));
  const stale = throwsKeycel(() => engine.rotateKey(target, NOW, { hash: CHEAP, actor: { key: admin.record } }), 'invalid_argument');
  assert.match(stale.message, /different versions/);
});
