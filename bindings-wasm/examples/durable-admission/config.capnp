# workerd configuration for the Durable Object admission example. Run from bindings-wasm/
# after `make build`:
#   node_modules/.bin/workerd serve examples/durable-admission/config.capnp --socket-addr http=127.0.0.1:8788
# Durable Object classes: `KeyAdmission`, one object per key id, and `FailureBudget`, one per
# client address or client id (in-memory storage here; `localDisk` or Cloudflare's storage in
# production). Two workers (`main` on 8788, `second` on 8789) share them.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker), (name = "second", worker = .second) ],
  sockets = [
    (name = "http", address = "127.0.0.1:8788", http = (), service = "main"),
    (name = "http2", address = "127.0.0.1:8789", http = (), service = "second"),
  ],
);

# The same module as a second worker: its own isolate and engine (a deployment's other
# isolates), over the Durable Objects the first one hosts.
const second :Workerd.Worker = (
  modules = .modules,
  compatibilityDate = "2025-06-01",
  bindings = [
    (name = "ADMIN_TOKEN", fromEnvironment = "KEYCEL_ADMIN_TOKEN"),
    (name = "ADMISSION", durableObjectNamespace = (className = "KeyAdmission", serviceName = "main")),
    (name = "FAILURES", durableObjectNamespace = (className = "FailureBudget", serviceName = "main")),
  ],
);

const modules :List(Workerd.Worker.Module) = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    (name = "keycel/web.mjs", esModule = embed "../../pkg/web.mjs"),
    (name = "keycel/web/keycel_wasm.js", esModule = embed "../../pkg/web/keycel_wasm.js"),
    (name = "keycel/web/glue.js", esModule = embed "../../pkg/web/glue.js"),
    (name = "keycel/keyring.mjs", esModule = embed "../../pkg/keyring.mjs"),
    (name = "keycel/keycel_bg.wasm", wasm = embed "../../pkg/keycel_bg.wasm"),
    (name = "policy.toml", text = embed "../../../policies/default.toml"),
];

const worker :Workerd.Worker = (
  modules = .modules,
  compatibilityDate = "2025-06-01",
  bindings = [
    (name = "ADMIN_TOKEN", fromEnvironment = "KEYCEL_ADMIN_TOKEN"),
    (name = "ADMISSION", durableObjectNamespace = "KeyAdmission"),
    (name = "FAILURES", durableObjectNamespace = "FailureBudget"),
  ],
  durableObjectNamespaces = [
    (className = "KeyAdmission", uniqueKey = "keycel-durable-admission-example"),
    (className = "FailureBudget", uniqueKey = "keycel-durable-failures-example"),
  ],
  durableObjectStorage = (inMemory = void),
);
