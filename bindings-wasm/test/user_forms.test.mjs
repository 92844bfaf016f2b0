// What a new user hit (issue 11), through the built package: records returned to a client
// carry no hash, an issued key reveals every form of its secret at once, and outdated hashes
// are upgraded on use (the host stores the record the engine hands back).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Engine, KeyRecord, Rehash, issueKey } from 'keycel';
import fs from 'node:fs';
import path from 'node:path';
import { CHEAP, DEFAULT_POLICY, NOW, REPO, throwsKeycel } from './helpers.mjs';

const engine = new Engine(DEFAULT_POLICY);
const READ = { action: 'api.read', account: 'acc_1' };

function noHash(text) {
  assert.ok(!text.includes('$argon2'), text);
  assert.ok(!text.includes('secret_hash') && !text.includes('"previous_secret"'), text);
}

describe('public and storage forms of a record', () => {
  test('toJSON, JSON.stringify and toJsonString never carry a hash', () => {
    const k = engine.issueKey({ name: 'k', role: 'reader', accounts: ['acc_1'], metadata: { team: 'core' } }, NOW, { hash: CHEAP });
    const rotated = engine.rotateKey(k.record, NOW, { hash: CHEAP, grace: '1h' }).record;
    for (const r of [k.record, rotated]) {
      noHash(JSON.stringify(r));
      noHash(r.toJsonString());
      noHash(JSON.stringify(r.toJSON()));
      assert.deepEqual(JSON.parse(r.toJsonString()), r.toJSON());
    }
    const view = rotated.toJSON();
    assert.equal(view.id, k.clientId);
    assert.deepEqual(view.accounts, ['acc_1']);
    assert.deepEqual(view.metadata, { team: 'core' });
    assert.equal(view.previous_secret_valid_until, '2026-11-23T13:00:00Z');
    assert.equal(view.version, 2);
    noHash(JSON.stringify({ issued: { ...k, recordJson: undefined } }));
  });

  test('the storage form is explicit and parses back', () => {
    const k = engine.issueKey({ name: 'k', role: 'reader' }, NOW, { hash: CHEAP });
    const r = engine.rotateKey(k.record, NOW, { hash: CHEAP, grace: '1h' }).record;
    const stored = r.toStorageJsonString();
    assert.match(stored, /"secret_hash":"\$argon2id\$/);
    assert.match(stored, /"previous_secret":\{"hash":"\$argon2id\$/);
    assert.deepEqual(r.toStorageJSON(), JSON.parse(stored));
    assert.equal(KeyRecord.parse(stored).toStorageJsonString(), stored);
    assert.equal(KeyRecord.parse(r.toStorageJSON()).toStorageJsonString(), stored);
    assert.equal(k.recordJson, k.record.toStorageJsonString());
    throwsKeycel(() => KeyRecord.parse(r.toJsonString()), 'invalid_record');
    throwsKeycel(() => KeyRecord.parse(r), 'invalid_record'); // a handle's toJSON is not a record
  });

  test('a KeyRecord handle still acts as a management actor', () => {
    const admin = engine.issueKey({ name: 'admin', role: 'admin' }, NOW, { hash: CHEAP });
    const made = engine.issueKey({ name: 'by-admin', role: 'reader' }, NOW, { hash: CHEAP, actor: { key: admin.record } });
    assert.equal(made.audit[0].actor, `key:${admin.clientId}`);
  });
});

describe('issued key forms', () => {
  test('every form at once, and each authenticates as the key', () => {
    const k = issueKey({ name: 'k', role: 'reader' }, NOW, { hash: CHEAP });
    assert.equal(k.token, `${k.clientId}_${k.secretKey}`);
    assert.equal(k.authorizationBearer, `Bearer ${k.token}`);
    assert.equal(Buffer.from(k.authorizationBasic.replace(/^Basic /, ''), 'base64').toString(), `${k.token}:`);
    assert.deepEqual(k.headers, { 'x-keycel-client-id': k.clientId, 'x-keycel-secret-key': k.secretKey });
    for (const headers of [{ authorization: k.authorizationBasic }, { authorization: k.authorizationBearer }, k.headers]) {
      const d = engine.authorize(k.record, engine.parseCredentials(headers), READ, NOW);
      assert.equal(d.status, 200, d.reason);
      d.lease.release();
    }
  });

  test('the header pair uses the policy names', () => {
    const finout = new Engine(`version = 1
[defaults.credentials]
client_id_header = "x-finout-client-id"
secret_header = "x-finout-secret-key"
[scopes]
"api.read" = "read"
[roles]
reader = ["api.read"]
[[rules]]
id = "scope-grants-action"
effect = "allow"
actions = ["*"]
when = "has_scope(request.action)"
`);
    const k = finout.issueKey({ name: 'k', role: 'reader' }, NOW, { hash: CHEAP });
    assert.deepEqual(Object.keys(k.headers), ['x-finout-client-id', 'x-finout-secret-key']);
    const d = finout.authorize(k.record, finout.parseCredentials(k.headers), { action: 'api.read' }, NOW);
    assert.equal(d.status, 200);
    d.lease.release();
  });
});

describe('rehash on use', () => {
  const outdated = () => issueKey({ name: 'old', role: 'reader' }, NOW, { hash: CHEAP });

  test('off by default: reported, not handed back', () => {
    const k = outdated();
    const d = engine.authorize(k.record, engine.parseCredentials({ authorization: k.authorizationBearer }), READ, NOW);
    assert.equal(d.status, 200);
    assert.equal(d.needsRehash, true);
    assert.equal(d.rehash, null);
    d.lease.release();
  });

  test('the first successful use hands back the record to store, once per key', () => {
    const eng = new Engine(DEFAULT_POLICY, { rehashOnUse: true });
    const k = outdated();
    const creds = () => eng.parseCredentials({ authorization: k.authorizationBearer });
    const other = outdated();
    const denied = eng.authorize(k.record, eng.parseCredentials({ authorization: other.authorizationBearer }), READ, NOW);
    assert.equal(denied.status, 401);
    assert.equal(denied.rehash, null, 'only a successful authentication');
    const first = eng.authorize(k.record, creds(), READ, NOW);
    assert.equal(first.status, 200);
    assert.ok(first.rehash instanceof Rehash);
    assert.equal(first.rehash.keyId, k.clientId);
    const second = eng.authorize(k.record, creds(), READ, NOW);
    assert.equal(second.needsRehash, true);
    assert.equal(second.rehash, null, 'at most one per key');
    first.lease.release();
    second.lease.release();
    const json = first.rehash.run(NOW + 1000);
    assert.equal(first.rehash.run(NOW), null, 'runs once');
    const next = KeyRecord.parse(json);
    assert.equal(next.version, 2);
    assert.match(next.toStorageJSON().secret_hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    eng.clearCache();
    const after = eng.authorize(next, creds(), READ, NOW);
    assert.equal(after.status, 200);
    assert.equal(after.needsRehash, false);
    assert.equal(after.rehash, null);
    after.lease.release();
  });

  test('an unrun Rehash freed (or dropped) keeps the key eligible', () => {
    const eng = new Engine(DEFAULT_POLICY, { rehashOnUse: true });
    const k = outdated();
    const creds = () => eng.parseCredentials({ authorization: k.authorizationBearer });
    const first = eng.authorize(k.record, creds(), READ, NOW);
    first.lease.release();
    first.rehash.free();
    const again = eng.authorize(k.record, creds(), READ, NOW);
    again.lease.release();
    assert.ok(again.rehash instanceof Rehash);
    throwsKeycel(() => again.rehash.run('not a time'), 'invalid_time');
  });
});

test('public record forms match the shared vectors (tests/vectors/forms/records.json)', () => {
  const forms = JSON.parse(fs.readFileSync(path.join(REPO, 'tests', 'vectors', 'forms', 'records.json'), 'utf8'));
  assert.ok(forms.cases.length >= 3);
  for (const c of forms.cases) {
    const r = KeyRecord.parse(c.storage);
    assert.deepEqual(r.toJSON(), c.public, c.name);
    assert.deepEqual(JSON.parse(r.toJsonString()), c.public, c.name);
    assert.deepEqual(r.toStorageJSON(), c.storage, c.name);
    noHash(JSON.stringify(r));
  }
});

describe('explain and roles', () => {
  test('explain: effective scopes, accounts, deadline and limit', () => {
    const owner = { id: 'alice', roles: ['viewer'], accounts: ['acc_1', 'acc_2'] };
    const k = engine.issueKey({ name: 'laptop', kind: 'personal', user: 'alice', role: 'viewer', accounts: ['acc_2', 'acc_3'] }, NOW, { hash: CHEAP, owner });
    const a = engine.explain(k.record, owner, NOW);
    assert.equal(a.key_id, k.clientId);
    assert.equal(a.kind, 'personal');
    assert.deepEqual(a.accounts, ['acc_2']);
    assert.ok(a.scopes.includes('api.read') && !a.scopes.includes('api.write'));
    assert.equal(a.max_concurrent, 5);
    assert.equal(a.active, true);
    assert.deepEqual(engine.explain(k.recordJson, { ...owner, roles: ['reader'] }, NOW).scopes, ['api.read']);
    throwsKeycel(() => engine.explain(k.record, null, NOW), 'invalid_record');
    const api = engine.issueKey({ name: 'svc', role: 'integration', maxConcurrent: 2, expiresIn: '1h' }, NOW, { hash: CHEAP });
    const b = engine.explain(api.record);
    assert.deepEqual(b.scopes, ['api.read', 'api.write']);
    assert.equal(b.accounts, 'all');
    assert.equal(b.expires_at, '2026-11-23T13:00:00Z');
    assert.equal(engine.explain(api.record, null, NOW + 7_200_000).active, false, 'past its deadline');
  });

  test('roles and the scope catalogue', () => {
    const roles = engine.roles();
    assert.deepEqual(roles.reader, ['api.read']);
    assert.ok(roles.admin.includes('admin.*'));
    assert.equal(typeof engine.scopes()['keys.create.api'], 'string');
  });
});
