// keycel for Node.
export * from './node/keycel_wasm.js';
export { KeycelError } from './node/glue.js';
