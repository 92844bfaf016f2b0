// keycel for Node.
export * from './node/keycel_wasm.js';
export { KeycelError } from './node/glue.js';
export { DurableObjectDocumentStore, Keyring, MemoryDocumentStore, managementHandler } from './keyring.js';
export type { Collection, DocumentStore, DurableObjectStorageLike, KeyView, RevealedKey, KeyringOptions, CallOptions, KeyFilter, KeyChanges, ManagementOptions, RateLimitSpec, CreditsSpec } from './keyring.js';
