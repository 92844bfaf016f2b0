// keycel for edge runtimes and browsers (workerd / Cloudflare Workers, Deno, browsers):
// call `initSync({ module })` with the compiled `keycel/keycel_bg.wasm` module, or
// `await init()` to fetch it next to this file, before anything else.
import * as bindings from './web/keycel_wasm.js';
import { KeycelError, flattenHeaders, installApi } from './web/glue.js';
import { installKeyring } from './keyring.mjs';

installApi(bindings);
installKeyring({ ...bindings, KeycelError, flattenHeaders });

export { default, default as init, initSync } from './web/keycel_wasm.js';
export { Admission, Credentials, Engine, FailureBudgets, KeyRecord, Lease, Rehash, UserRecord, issueKey, parseCredentials, rotateKey, version } from './web/keycel_wasm.js';
export { KeycelError } from './web/glue.js';
export { DurableObjectDocumentStore, Keyring, MemoryDocumentStore, managementHandler } from './keyring.mjs';
