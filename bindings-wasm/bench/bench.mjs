// keycel from JS vs peers, in one process (run: `make -C bindings-wasm bench`).
//
// * keycel: cached `authorize` (verified-secret cache hit: no argon2) under the default
//   policy, with a parsed record and parsed credentials, lease released; also the whole
//   request path from headers, and `decide` (policy only).
// * @cedar-policy/cedar-wasm: `statefulIsAuthorized` with a pre-parsed policy set that
//   encodes the same decision (scope grants the action, admin scopes only under /admin/,
//   account scope).
// * @marcbachmann/cel-js: the equivalent CEL expression, parsed once, evaluated per call.
//
// Batches of calls are interleaved across contenders (fair under machine noise); the
// report gives the median per-call time of the batches and ratios against keycel.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from 'keycel';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { parse as celParse } from '@marcbachmann/cel-js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const POLICY = fs.readFileSync(path.join(HERE, '..', '..', 'policies', 'default.toml'), 'utf8');
const NOW = Date.now();
const BATCH = Number(process.env.BENCH_BATCH ?? 500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 60);

// --- keycel ---------------------------------------------------------------------------
const engine = new Engine(POLICY);
const issued = engine.issueKey({ name: 'bench', role: 'reader', accounts: ['acc_1', 'acc_2'] }, NOW, {
  hash: { mCost: 1024, tCost: 1, pCost: 1 },
});
const record = issued.record;
const headers = { authorization: `Bearer ${issued.token}`, 'user-agent': 'bench', accept: 'application/json' };
const credentials = engine.parseCredentials(headers);
const request = { action: 'api.read', account: 'acc_1', method: 'GET', path: '/v1/accounts/acc_1/data' };
{
  const d = engine.authorize(record, credentials, request, NOW); // warms the verified-secret cache
  if (!d.allowed) throw new Error(`keycel denied: ${d.reason}`);
  d.lease.release();
}

// --- cedar-wasm -----------------------------------------------------------------------
const CEDAR_POLICIES = `
permit(principal, action, resource)
when { principal.scopes.contains(context.action) && (principal.allAccounts || principal.accounts.contains(context.account)) };
forbid(principal, action, resource)
when { context.action like "admin.*" && !(context.path like "/admin/*") };
`;
const pre = cedar.preparsePolicySet('keycel-equivalent', { staticPolicies: CEDAR_POLICIES });
if (pre.type !== 'success') throw new Error(`cedar preparse: ${JSON.stringify(pre)}`);
const cedarCall = () => cedar.statefulIsAuthorized({
  principal: { type: 'Key', id: issued.clientId },
  action: { type: 'Action', id: 'call' },
  resource: { type: 'Account', id: request.account },
  context: { action: request.action, account: request.account, method: request.method, path: request.path },
  preparsedPolicySetId: 'keycel-equivalent',
  entities: [{
    uid: { type: 'Key', id: issued.clientId },
    attrs: { scopes: ['api.read'], accounts: ['acc_1', 'acc_2'], allAccounts: false, role: 'reader' },
    parents: [],
  }],
});
{
  const a = cedarCall();
  if (a.type !== 'success' || a.response.decision !== 'allow') throw new Error(`cedar: ${JSON.stringify(a)}`);
}

// --- cel-js ---------------------------------------------------------------------------
const celExpr = celParse(
  '!(request.action.startsWith("admin.") && !request.path.startsWith("/admin/")) && ' +
  'request.action in key.scopes && (key.all_accounts || request.account in key.accounts)');
const celCall = () => celExpr({
  key: { id: issued.clientId, role: 'reader', scopes: ['api.read'], accounts: ['acc_1', 'acc_2'], all_accounts: false },
  request,
});
if (celCall() !== true) throw new Error('cel-js denied');

// --- run ------------------------------------------------------------------------------
const contenders = {
  'keycel authorize (cached, lease released)': () => engine.authorize(record, credentials, request, NOW).lease.release(),
  'keycel parseCredentials + authorize (from headers)': () => {
    const c = engine.parseCredentials(headers);
    engine.authorize(record, c, request, NOW).lease.release();
    c.free();
  },
  'keycel decide (policy only)': () => engine.decide(record, request, NOW),
  'cedar-wasm statefulIsAuthorized (pre-parsed)': cedarCall,
  'cel-js evaluate (parsed once)': celCall,
};
const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
for (const fn of Object.values(contenders)) for (let i = 0; i < 2000; i++) fn(); // JIT warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of Object.entries(contenders)) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) fn();
    samples[name].push(Number(process.hrtime.bigint() - t0) / BATCH / 1000);
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const base = median(samples['keycel authorize (cached, lease released)']);
const version = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', '@cedar-policy', 'cedar-wasm', 'package.json'), 'utf8')).version;
console.log(`node ${process.version}; cedar-wasm ${version}; ${ROUNDS} rounds x ${BATCH} calls; median us/call`);
for (const [name, xs] of Object.entries(samples)) {
  const m = median(xs);
  console.log(`${name.padEnd(52)} ${m.toFixed(2).padStart(8)} us   ${(m / base).toFixed(2).padStart(6)}x keycel authorize`);
}
