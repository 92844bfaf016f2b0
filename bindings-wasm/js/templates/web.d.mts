// keycel for edge runtimes and browsers: initialize with `initSync({ module })` or `await init()`.
export * from './web/keycel_wasm.js';
export { default, default as init } from './web/keycel_wasm.js';
export { KeycelError } from './web/glue.js';
export { DurableObjectDocumentStore, Keyring, MemoryDocumentStore, managementHandler } from './keyring.js';
export type { Collection, DocumentStore, DurableObjectStorageLike, KeyView, RevealedKey, KeyringOptions, CallOptions, KeyFilter, KeyChanges, ManagementOptions, RateLimitSpec, CreditsSpec } from './keyring.js';
