# workerd configuration for the example worker. Run from bindings-wasm/ after `make build`
# (which bundles worker.mjs with hono into build/worker.mjs):
#   node_modules/.bin/workerd serve examples/worker/config.capnp --socket-addr http=127.0.0.1:8787
# The keycel modules are the built package (pkg/); module names mirror its layout so its
# relative imports resolve.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "../../build/worker.mjs"),
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
    (name = "KEYS", durableObjectNamespace = (className = "KeyStore")),
  ],
  # The managed keys live in a Durable Object's storage (in memory here; on disk or on
  # Cloudflare in production).
  durableObjectNamespaces = [ (className = "KeyStore", uniqueKey = "keycel-example-keystore") ],
  durableObjectStorage = (inMemory = void),
);
