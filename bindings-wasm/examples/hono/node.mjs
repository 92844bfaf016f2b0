// The Hono example on Node:  KEYCEL_RECORDS=records.json PORT=8788 node examples/hono/node.mjs
// KEYCEL_RECORDS: a JSON array of key records (what issueKey returns as `record`).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { Engine, KeyRecord } from 'keycel';
import { createApp } from './app.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const policy = fs.readFileSync(process.env.KEYCEL_POLICY ?? path.join(here, '..', '..', '..', 'policies', 'default.toml'), 'utf8');
const engine = new Engine(policy);
const records = new Map();
for (const r of process.env.KEYCEL_RECORDS ? JSON.parse(fs.readFileSync(process.env.KEYCEL_RECORDS, 'utf8')) : []) {
  const record = KeyRecord.parse(r);
  records.set(record.id, record);
}
const port = Number(process.env.PORT ?? 8788);
// The client address for policies: the socket's (@hono/node-server puts the request in c.env).
const app = createApp(engine, records, new Map(), (c) => c.env?.incoming?.socket?.remoteAddress);
serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => {
  console.log(`hono example on http://127.0.0.1:${port}`);
});
