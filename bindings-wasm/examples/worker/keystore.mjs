// A Durable Object holding keycel's keys and users in its storage, serving the management
// API (keycel's fetch handler) under /manage. Keys live in `state.storage` through
// DurableObjectDocumentStore; the object's input gate holds other requests while a storage
// call is pending, so each commit's read-check-write is atomic (core checks the versions).
//
//   POST /_mgmt/seed   create users and keys as the operator (needs x-admin-token; tests, set-up)
//   *    /manage/...   the management API (authenticated by the acting key, decided by the policy)
import { DurableObjectDocumentStore, Keyring, KeycelError, managementHandler } from 'keycel/web.mjs';

const json = (status, value) => new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });

export function makeKeyStore(engine) {
  return class KeyStore {
    constructor(state, env) {
      this.env = env;
      this.store = new DurableObjectDocumentStore(state.storage);
      this.keyring = new Keyring(engine, this.store, { hash: 'edge' });
      this.manage = managementHandler({ engine, store: this.store, prefix: '/manage', hash: 'edge',
        clientIp: (request) => request.headers.get('cf-connecting-ip') });
    }

    async fetch(request) {
      const url = new URL(request.url);
      if (url.pathname === '/manage' || url.pathname.startsWith('/manage/')) return this.manage(request);
      if (url.pathname === '/_mgmt/seed' && request.method === 'POST') {
        if (request.headers.get('x-admin-token') !== this.env.ADMIN_TOKEN) return json(401, { error: 'admin token required' });
        try {
          const { users = [], keys = [] } = await request.json();
          for (const u of users) await this.keyring.putUser(u);
          const out = {};
          for (const { label, spec } of keys) {
            const k = await this.keyring.create(spec);
            out[label] = { id: k.clientId, secret: k.secretKey, token: k.token };
          }
          return json(201, out);
        } catch (e) {
          if (e instanceof KeycelError) return json(400, { error: e.code, message: e.message });
          throw e;
        }
      }
      return json(404, { error: 'not_found' });
    }
  };
}
