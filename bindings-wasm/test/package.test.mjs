// The assembled npm package: its files and its `exports` conditions.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { HERE } from './helpers.mjs';

const ROOT = path.resolve(HERE, '..');

test('npm pack ships every file the entry points load', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: path.join(ROOT, 'pkg'), encoding: 'utf8' });
  const files = new Set(JSON.parse(out)[0].files.map((f) => f.path));
  for (const f of ['package.json', 'index.cjs', 'index.mjs', 'index.d.ts', 'web.mjs', 'web.d.mts', 'keycel_bg.wasm',
    'node/keycel_wasm.js', 'node/glue.js', 'node/package.json', 'web/keycel_wasm.js', 'web/glue.js', 'web/package.json']) {
    assert.ok(files.has(f), `${f} missing from the package`);
  }
  assert.ok(![...files].some((f) => f.endsWith('_bg.wasm') && f !== 'keycel_bg.wasm'), 'one .wasm only');
});

const resolveWith = (conditions, code) => execFileSync(process.execPath, [...conditions.map((c) => `--conditions=${c}`),
  '--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8' }).trim();

test('exports: edge conditions get the web build, Node gets the Node build', () => {
  const probe = "const k = await import('keycel'); console.log(typeof k.initSync, typeof k.Engine, typeof k.KeycelError);";
  for (const c of ['workerd', 'worker', 'deno', 'browser']) assert.equal(resolveWith([c], probe), 'function function function', c);
  assert.equal(resolveWith([], probe), 'undefined function function');
  const cjs = execFileSync(process.execPath, ['-e', "const k = require('keycel'); console.log(typeof k.Engine, typeof k.initSync)"],
    { cwd: ROOT, encoding: 'utf8' }).trim();
  assert.equal(cjs, 'function undefined');
});
