// argon2 memory is reused (issue 12): a flood of unknown client ids (each burns a dummy
// argon2 verification with the default policy's `owasp` preset, m = 19 MiB) keeps a fresh
// Node process's memory within one m_cost block plus a small constant. Linear memory of a
// wasm instance never shrinks, so its final size is its peak; RSS is read from the process
// (measured: base 71 MiB, 93 MiB after the first verification, 93-94 MiB after 80).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { HERE } from './helpers.mjs';

const M_COST_MIB = 19;
const SMALL_MIB = 24;

const CHILD = `
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from 'keycel';
const policy = fs.readFileSync(path.join(${JSON.stringify(HERE)}, '..', '..', 'policies', 'default.toml'), 'utf8');
const engine = new Engine(policy);
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const rand = (n) => Array.from({ length: n }, () => ALPHABET[Math.floor(Math.random() * 62)]).join('');
function crc32(s) {
  let c = ~0;
  for (const b of Buffer.from(s)) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (~c) >>> 0;
}
function forged() {
  const id = 'kc_' + rand(16), secret = rand(32);
  let v = crc32(id + '_' + secret), sum = '';
  for (let i = 0; i < 6; i++) { sum = ALPHABET[v % 62] + sum; v = Math.floor(v / 62); }
  return id + '_' + secret + sum;
}
const request = { action: 'api.read' };
const once = () => {
  const creds = engine.parseCredentials({ authorization: 'Bearer ' + forged() });
  return engine.authorize(null, creds, request, Date.now());
};
// Base: the engine is built and a request parsed; no argon2 ran yet.
engine.parseCredentials({ authorization: 'Bearer ' + forged() });
const base = process.memoryUsage().rss;
const statuses = {};
let warm = 0, peak = 0;
for (let i = 0; i < 40; i++) {
  const d = once();
  statuses[d.status] = (statuses[d.status] || 0) + 1;
  const rss = process.memoryUsage().rss;
  // The first call also pays V8's one-off compilation of the module (a transient peak).
  if (i === 1) warm = rss;
  if (i >= 1) peak = Math.max(peak, rss);
}
console.log(JSON.stringify({ base, warm, peak, statuses }));
`;

test('a flood of unknown ids keeps memory within one argon2 block (owasp preset)', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], { cwd: HERE, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const { base, warm, peak, statuses } = JSON.parse(r.stdout);
  assert.equal(statuses[401], 40, JSON.stringify(statuses)); // every call really hashed
  const mib = (n) => (n / 1048576).toFixed(1);
  // One argon2 block (a single-threaded isolate has one gate slot) plus a small constant...
  assert.ok(peak - base <= (M_COST_MIB + SMALL_MIB) * 1048576, `RSS ${mib(base)} -> ${mib(peak)} MiB`);
  // ...and after the first verifications, 38 more add nothing but noise.
  assert.ok(peak - warm <= 4 * 1048576, `RSS ${mib(warm)} -> ${mib(peak)} MiB after the first verifications`);
});
