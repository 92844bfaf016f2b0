// The Express example:  KEYCEL_RECORDS=records.json PORT=8789 node examples/express/server.mjs
// Routes: the HTTP contract of tests/http_cases/. KEYCEL_RECORDS: a JSON array of key records.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { Engine, KeyRecord } from 'keycel';
import { keycel } from 'keycel/express';

const here = path.dirname(fileURLToPath(import.meta.url));
const policy = fs.readFileSync(process.env.KEYCEL_POLICY ?? path.join(here, '..', '..', '..', 'policies', 'default.toml'), 'utf8');
const engine = new Engine(policy);
const records = new Map(); // client id -> KeyRecord (your database)
for (const r of process.env.KEYCEL_RECORDS ? JSON.parse(fs.readFileSync(process.env.KEYCEL_RECORDS, 'utf8')) : []) {
  const record = KeyRecord.parse(r);
  records.set(record.id, record);
}
const guard = (action, account) => keycel({ engine, action, account, lookup: (id) => records.get(id) ?? null });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** A missing resource answers exactly like an out-of-scope account (same bytes, same type). */
const notFound = (res) => res.status(404).setHeader('content-type', 'application/json').end(engine.notFoundBody());

const app = express();
app.get('/health', (req, res) => res.json({ ok: true }));
app.get('/_inflight/:keyId', (req, res) => res.json({ in_flight: engine.inFlight(req.params.keyId) }));
app.get('/v1/accounts/:account_id/data', guard('api.read', 'account_id'), (req, res) =>
  res.json({ account: req.params.account_id, key_id: req.keycel.keyId }));
app.get('/v1/accounts/:account_id/missing', guard('api.read', 'account_id'), (req, res) => notFound(res));
app.get('/v1/accounts/:account_id/stream', guard('api.read', 'account_id'), async (req, res) => {
  const chunks = Math.min(Number(req.query.chunks ?? 3), 100);
  const ms = Math.min(Number(req.query.ms ?? 0), 5000);
  res.type('text/plain');
  for (let i = 0; i < chunks && !res.destroyed; i++) {
    if (i > 0) await sleep(ms);
    res.write(`chunk ${i}\n`);
  }
  res.end();
});
app.get('/v1/accounts/:account_id/boom', guard('api.read', 'account_id'), () => {
  throw new Error('the handler failed');
});
app.post('/admin/accounts', guard('admin.account.create'), (req, res) => res.json({ created: true, key_id: req.keycel.keyId }));
app.use((req, res) => notFound(res));
// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => res.status(500).type('text/plain').send('Internal Server Error'));

const port = Number(process.env.PORT ?? 8789);
app.listen(port, '127.0.0.1', () => console.log(`express example on http://127.0.0.1:${port}`));
