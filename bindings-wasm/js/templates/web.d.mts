// keycel for edge runtimes and browsers: initialize with `initSync({ module })` or `await init()`.
export * from './web/keycel_wasm.js';
export { default, default as init } from './web/keycel_wasm.js';
export { KeycelError } from './web/glue.js';
