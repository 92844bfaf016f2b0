// Failed-authentication budgets kept outside the engine (issue 13): `failureBudgets:
// 'external'`, `engine.failureSubjects` and `FailureBudgets` (core's budget, for a Durable
// Object per subject) give the same answers as an engine counting its own budgets.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Engine, FailureBudgets, issueKey, parseCredentials } from 'keycel';
import { CHEAP, DEFAULT_POLICY, NOW, throwsKeycel } from './helpers.mjs';

const READ = { action: 'api.read', account: 'acc_1' };
const forged = () => parseCredentials({ authorization: `Bearer ${issueKey({ name: 'f', role: 'reader' }, NOW, { hash: CHEAP }).token}` });

describe('failure budgets outside the engine', () => {
  test("subjects in the engine order, IPv6 per /64; none for a cached secret of a valid key", () => {
    const engine = new Engine(DEFAULT_POLICY, { failureBudgets: 'external' });
    const k = issueKey({ name: 'k', role: 'reader', accounts: ['acc_1'] }, NOW, { hash: CHEAP });
    const creds = engine.parseCredentials({ authorization: `Bearer ${k.token}` });
    const both = [{ kind: 'ip', key: '2001:db8:0:0::/64' }, { kind: 'client_id', key: k.clientId }];
    assert.deepEqual(engine.failureSubjects(k.record, creds, '2001:db8::7', NOW), both);
    assert.deepEqual(engine.failureSubjects(null, creds, '2001:db8::7', NOW), both, 'an unknown id is charged alike');
    assert.deepEqual(engine.failureSubjects(k.record, creds, null, NOW), [{ kind: 'client_id', key: k.clientId }]);
    assert.equal(engine.authorize(k.record, creds, READ, NOW).allowed, true);
    assert.equal(engine.failureSubjects(k.record, creds, '192.0.2.1', NOW), null, 'a cached secret is not charged');
    assert.equal(engine.failureSubjects(k.recordJson, creds, '192.0.2.1', NOW), null, 'record as JSON text');
    // The same cached secret once the key is inactive: argon2 runs (a dummy), so it is charged.
    const inactive = JSON.stringify({ ...JSON.parse(k.recordJson), active: false });
    assert.deepEqual(engine.failureSubjects(inactive, creds, '2001:db8::7', NOW), both);
    assert.deepEqual(engine.failureSubjects(null, creds, '', NOW)[0], { kind: 'ip', key: '' }, 'core names an empty address');
    throwsKeycel(() => engine.failureSubjects(k.record, creds, 7, NOW), 'invalid_argument');
    throwsKeycel(() => engine.failureSubjects(k.record, creds, null, 'soon'), 'invalid_time');
  });

  test("the Durable Object's 429 is the engine's own; an external engine counts nothing", () => {
    const local = new Engine(DEFAULT_POLICY);
    const external = new Engine(DEFAULT_POLICY, { failureBudgets: 'external' });
    const budgets = new FailureBudgets(DEFAULT_POLICY);
    const ip = '203.0.113.5';
    for (let i = 0; i < 20; i++) {
      const creds = forged();
      assert.equal(local.authorize(null, creds, { ...READ, ip }, NOW).status, 401);
      assert.equal(external.authorize(null, creds, { ...READ, ip }, NOW).status, 401);
      assert.deepEqual(budgets.charge({ kind: 'ip', key: ip }, NOW), { allowed: true });
    }
    const engine429 = local.authorize(null, forged(), { ...READ, ip }, NOW);
    const ours = budgets.charge({ kind: 'ip', key: ip }, NOW);
    assert.equal(engine429.status, 429);
    assert.deepEqual(
      { status: ours.status, error: ours.error, body: ours.body, headers: Object.fromEntries(ours.headers) },
      { status: engine429.status, error: engine429.code, body: engine429.body, headers: engine429.headers },
    );
    assert.equal(external.authorize(null, forged(), { ...READ, ip }, NOW).status, 401, 'external: the engine counts nothing');
    // A refund gives one back; a later time pays the debt.
    budgets.refund({ kind: 'ip', key: ip }, NOW);
    assert.equal(budgets.charge({ kind: 'ip', key: ip }, NOW).allowed, true);
    assert.equal(budgets.charge({ kind: 'ip', key: ip }, NOW + 3000).allowed, true);
    assert.equal(budgets.tracked, 1);
  });

  test('bad input gets a typed error', () => {
    const budgets = new FailureBudgets(DEFAULT_POLICY);
    throwsKeycel(() => budgets.charge({ kind: 'user', key: 'x' }, NOW), 'invalid_argument');
    assert.deepEqual(budgets.charge({ kind: 'ip', key: '' }, NOW), { allowed: true }, 'an empty address is a subject');
    throwsKeycel(() => budgets.charge({ kind: 'ip', key: 'x'.repeat(300) }, NOW), 'invalid_argument');
    throwsKeycel(() => budgets.charge({ kind: 'ip', key: 'x', extra: 1 }, NOW), 'invalid_argument');
    throwsKeycel(() => budgets.charge(null, NOW), 'invalid_argument');
    throwsKeycel(() => budgets.refund({ kind: 'ip', key: 'x' }, 'yesterday'), 'invalid_time');
    throwsKeycel(() => new FailureBudgets('version = 1\n[defaults.throttle]\nwindow = "0s"\n'), 'policy_error');
    throwsKeycel(() => new Engine(DEFAULT_POLICY, { failureBudgets: 'redis' }), 'invalid_argument');
  });
});
