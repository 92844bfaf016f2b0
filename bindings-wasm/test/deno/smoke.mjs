// Deno smoke test of the built web package: `deno run --allow-read=.,../policies test/deno/smoke.mjs`
// from bindings-wasm/. Exits non-zero on any mismatch.
import { initSync, Engine, KeyRecord, KeycelError } from '../../pkg/web.mjs';

const fail = (msg) => {
  console.error(`deno smoke: ${msg}`);
  Deno.exit(1);
};
const check = (cond, msg) => cond || fail(msg);

initSync({ module: await Deno.readFile(new URL('../../pkg/keycel_bg.wasm', import.meta.url)) });
const engine = new Engine(await Deno.readTextFile(new URL('../../../policies/default.toml', import.meta.url)));
const now = Date.now();
const issued = engine.issueKey({ name: 'deno', role: 'reader', accounts: ['acc_1'] }, now, {
  hash: { mCost: 1024, tCost: 1, pCost: 1 },
});
const record = KeyRecord.parse(issued.recordJson);
const request = { action: 'api.read', account: 'acc_1', method: 'GET', path: '/v1/accounts/acc_1' };

const ok = engine.authorize(record, engine.parseCredentials(new Headers({ authorization: `Basic ${btoa(`${issued.token}:`)}` })), request, now);
check(ok.allowed && ok.status === 200 && ok.method === 'basic', `Basic: ${JSON.stringify(ok)}`);
ok.lease.release();

const scoped = engine.authorize(record, engine.parseCredentials(new Headers({ authorization: `Bearer ${issued.token}` })), { ...request, account: 'acc_2' }, now);
check(scoped.status === 404 && scoped.body === engine.notFoundBody(), `404: ${JSON.stringify(scoped)}`);

try {
  engine.parseCredentials(new Headers({ authorization: 'Bearer kc_nope' }));
  fail('a malformed token was accepted');
} catch (e) {
  check(e instanceof KeycelError && e.code === 'invalid_credentials' && e.decision.status === 401, `error: ${e}`);
}
console.log('deno smoke: ok');
