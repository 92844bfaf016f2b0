// Deno: the keyring over MemoryDocumentStore and the management fetch handler (web build).
// `deno run --allow-read=.,../policies test/deno/management.mjs` from bindings-wasm/.
import { initSync, Engine, Keyring, MemoryDocumentStore, managementHandler } from '../../pkg/web.mjs';

const fail = (msg) => {
  console.error(`deno management: ${msg}`);
  Deno.exit(1);
};
const check = (cond, msg) => cond || fail(msg);

initSync({ module: await Deno.readFile(new URL('../../pkg/keycel_bg.wasm', import.meta.url)) });
const engine = new Engine(await Deno.readTextFile(new URL('../../../policies/default.toml', import.meta.url)));
const hash = { mCost: 1024, tCost: 1, pCost: 1 };
const store = new MemoryDocumentStore();
const admin = await new Keyring(engine, store, { hash }).create({ name: 'root', role: 'admin' });
const manage = managementHandler({ engine, store, prefix: '/manage', hash });
const auth = { authorization: `Bearer ${admin.token}` };
const made = await manage(new Request('http://deno.test/manage/keys', { method: 'POST', headers: auth, body: JSON.stringify({ name: 'ci', role: 'reader' }) }));
const body = await made.text();
check(made.status === 201 && !body.includes('$argon2'), `create: ${made.status} ${body}`);
const id = JSON.parse(body).key.id;
const got = await manage(new Request(`http://deno.test/manage/keys/${id}`, { headers: auth }));
check(got.status === 200 && (await got.json()).name === 'ci', 'get');
const listed = await manage(new Request('http://deno.test/manage/keys', { headers: auth }));
check((await listed.json()).items.length === 2, 'list');
console.log('deno management: ok');
