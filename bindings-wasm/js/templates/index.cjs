'use strict';
// keycel for Node (CommonJS): the WebAssembly module is compiled synchronously on load.
const bindings = require('./node/keycel_wasm.js');
const glue = require('./node/glue.js');

glue.installApi(bindings);

module.exports = {
  Admission: bindings.Admission,
  Credentials: bindings.Credentials,
  Engine: bindings.Engine,
  KeyRecord: bindings.KeyRecord,
  KeycelError: glue.KeycelError,
  Lease: bindings.Lease,
  Rehash: bindings.Rehash,
  UserRecord: bindings.UserRecord,
  issueKey: bindings.issueKey,
  parseCredentials: bindings.parseCredentials,
  rotateKey: bindings.rotateKey,
  version: bindings.version,
};
