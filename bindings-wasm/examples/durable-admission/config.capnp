# workerd configuration for the Durable Object admission example. Run from bindings-wasm/
# after `make build`:
#   node_modules/.bin/workerd serve examples/durable-admission/config.capnp --socket-addr http=127.0.0.1:8788
# One Durable Object class, `KeyAdmission`, one object per key id (in-memory storage here;
# `localDisk` or Cloudflare's storage in production).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:8788", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    (name = "keycel/web.mjs", esModule = embed "../../pkg/web.mjs"),
    (name = "keycel/web/keycel_wasm.js", esModule = embed "../../pkg/web/keycel_wasm.js"),
    (name = "keycel/web/glue.js", esModule = embed "../../pkg/web/glue.js"),
    (name = "keycel/keyring.mjs", esModule = embed "../../pkg/keyring.mjs"),
    (name = "keycel/keycel_bg.wasm", wasm = embed "../../pkg/keycel_bg.wasm"),
    (name = "policy.toml", text = embed "../../../policies/default.toml"),
  ],
  compatibilityDate = "2025-06-01",
  bindings = [
    (name = "ADMIN_TOKEN", fromEnvironment = "KEYCEL_ADMIN_TOKEN"),
    (name = "ADMISSION", durableObjectNamespace = "KeyAdmission"),
  ],
  durableObjectNamespaces = [ (className = "KeyAdmission", uniqueKey = "keycel-durable-admission-example") ],
  durableObjectStorage = (inMemory = void),
);
