'use strict';
// keycel for Node (CommonJS): the WebAssembly module is compiled synchronously on load.
const bindings = require('./node/keycel_wasm.js');
const glue = require('./node/glue.js');

glue.installApi(bindings);
const keyring = require('./keyring.cjs');

keyring.installKeyring({ ...bindings, KeycelError: glue.KeycelError, flattenHeaders: glue.flattenHeaders });

module.exports = {
  Admission: bindings.Admission,
  Credentials: bindings.Credentials,
  DurableObjectDocumentStore: keyring.DurableObjectDocumentStore,
  Engine: bindings.Engine,
  FailureBudgets: bindings.FailureBudgets,
  KeyRecord: bindings.KeyRecord,
  Keyring: keyring.Keyring,
  KeycelError: glue.KeycelError,
  Lease: bindings.Lease,
  MemoryDocumentStore: keyring.MemoryDocumentStore,
  Rehash: bindings.Rehash,
  UserRecord: bindings.UserRecord,
  issueKey: bindings.issueKey,
  managementHandler: keyring.managementHandler,
  parseCredentials: bindings.parseCredentials,
  rotateKey: bindings.rotateKey,
  version: bindings.version,
};
