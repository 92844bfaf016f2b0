// Shared test helpers. Tests import the BUILT package by name (node_modules/keycel -> ../pkg).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KeycelError } from 'keycel';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const DEFAULT_POLICY = fs.readFileSync(path.join(REPO, 'policies', 'default.toml'), 'utf8');
/** Cheapest argon2id parameters the default floor accepts: keeps the suite fast. */
export const CHEAP = { mCost: 1024, tCost: 1, pCost: 1 };
export const NOW = Date.parse('2026-11-23T12:00:00Z');

export const basic = (user, password) =>
  `Basic ${Buffer.from(password === undefined ? user : `${user}:${password}`).toString('base64')}`;

/** Awaits `promise` and asserts that it rejects with a KeycelError with `code`; returns the error. */
export async function rejects(promise, code) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof KeycelError, `expected KeycelError ${code}, got ${err}`);
  assert.equal(err.code, code, err.message);
  return err;
}

/** Asserts that `fn` throws a KeycelError with `code`; returns the error. */
export function throwsKeycel(fn, code) {
  let err;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `expected KeycelError ${code}, nothing was thrown`);
  assert.ok(err instanceof KeycelError, `expected KeycelError ${code}, got ${err && err.name}: ${err && err.message}`);
  assert.ok(err instanceof Error);
  assert.equal(err.name, 'KeycelError');
  if (code !== undefined) assert.equal(err.code, code, err.message);
  return err;
}
