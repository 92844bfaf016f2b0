// Assembles the npm package `keycel` in pkg/ from the two wasm-bindgen outputs
// (build/node, build/web) and the optimized .wasm. Every patch of generated code checks
// that its pattern is present, so a wasm-bindgen upgrade fails here, loudly.
//
// usage: node js/assemble.mjs <build dir> <optimized wasm> <pkg dir>
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const [buildDir, wasmFile, pkgDir] = process.argv.slice(2);
if (!buildDir || !wasmFile || !pkgDir) {
  console.error('usage: node js/assemble.mjs <build dir> <optimized wasm> <pkg dir>');
  process.exit(2);
}
const STEM = 'keycel_wasm';

function replaceOnce(text, from, to, file) {
  const n = text.split(from).length - 1;
  if (n !== 1) throw new Error(`${file}: expected exactly one ${JSON.stringify(from)}, found ${n}`);
  return text.replace(from, to);
}

function copyTree(src, dst) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name), d = path.join(dst, e.name);
    if (e.isDirectory()) copyTree(s, d);
    else fs.copyFileSync(s, d);
  }
}

function findGlue(dir) {
  const snippets = path.join(dir, 'snippets');
  const found = fs.readdirSync(snippets).map((d) => path.join('snippets', d, 'js', 'glue.js'))
    .filter((p) => fs.existsSync(path.join(dir, p)));
  if (found.length !== 1) throw new Error(`expected one glue.js snippet in ${snippets}, found ${found.length}`);
  return found[0].split(path.sep).join('/');
}

// Wrong handle types throw KeycelError('invalid_argument') like every other bad input.
const ASSERT_FROM = 'throw new Error(`expected instance of ${klass.name}`);';
const ASSERT_TO = "throw makeError('invalid_argument', `expected an instance of ${klass.name}`, undefined);";

fs.rmSync(pkgDir, { recursive: true, force: true });
fs.mkdirSync(pkgDir, { recursive: true });
fs.copyFileSync(wasmFile, path.join(pkgDir, 'keycel_bg.wasm'));

// Node (CommonJS): one shared .wasm at the package root; the glue snippet becomes CommonJS
// so any Node >= 18 can `require` it.
copyTree(path.join(buildDir, 'node'), path.join(pkgDir, 'node'));
fs.rmSync(path.join(pkgDir, 'node', `${STEM}_bg.wasm`));
const nodeGlue = findGlue(path.join(pkgDir, 'node'));
{
  const f = path.join(pkgDir, 'node', `${STEM}.js`);
  let js = fs.readFileSync(f, 'utf8');
  js = replaceOnce(js, 'const wasmPath = `${__dirname}/keycel_wasm_bg.wasm`;',
    "const wasmPath = require('path').join(__dirname, '..', 'keycel_bg.wasm');", f);
  js = replaceOnce(js, ASSERT_FROM, ASSERT_TO, f);
  fs.writeFileSync(f, js);
  const g = path.join(pkgDir, 'node', nodeGlue);
  let glue = fs.readFileSync(g, 'utf8');
  const names = [...glue.matchAll(/^export (?:class|function) (\w+)/gm)].map((m) => m[1]);
  glue = glue.replace(/^export (class|function) /gm, '$1 ');
  if (/^\s*export\b/m.test(glue)) throw new Error(`${g}: unexpected export form`);
  glue = `'use strict';\n${glue}\nmodule.exports = { ${names.join(', ')} };\n`;
  fs.writeFileSync(g, glue);
  fs.writeFileSync(path.join(path.dirname(g), 'package.json'), '{ "type": "commonjs" }\n');
  fs.copyFileSync(path.join(here, 'templates', 'glue.d.ts'), path.join(path.dirname(g), 'glue.d.ts'));
  fs.writeFileSync(path.join(pkgDir, 'node', 'package.json'), '{ "type": "commonjs" }\n');
}

// Web (ES module, init() / initSync({ module })): workerd, Deno, browsers, bundlers.
copyTree(path.join(buildDir, 'web'), path.join(pkgDir, 'web'));
fs.rmSync(path.join(pkgDir, 'web', `${STEM}_bg.wasm`));
const webGlue = findGlue(path.join(pkgDir, 'web'));
{
  const f = path.join(pkgDir, 'web', `${STEM}.js`);
  let js = fs.readFileSync(f, 'utf8');
  js = replaceOnce(js, "new URL('keycel_wasm_bg.wasm', import.meta.url)", "new URL('../keycel_bg.wasm', import.meta.url)", f);
  js = replaceOnce(js, ASSERT_FROM, ASSERT_TO, f);
  fs.writeFileSync(f, js);
  fs.copyFileSync(path.join(here, 'templates', 'glue.d.ts'), path.join(pkgDir, 'web', path.dirname(webGlue), 'glue.d.ts'));
  fs.writeFileSync(path.join(pkgDir, 'web', 'package.json'), '{ "type": "module" }\n');
}

// Entry points and types from the templates in js/.
const fill = (name, vars) => {
  let text = fs.readFileSync(path.join(here, 'templates', name), 'utf8');
  for (const [k, v] of Object.entries(vars)) text = text.split(`@@${k}@@`).join(v);
  if (text.includes('@@')) throw new Error(`${name}: unfilled placeholder`);
  return text;
};
const vars = { NODE_GLUE: `./node/${nodeGlue}`, WEB_GLUE: `./web/${webGlue}` };
for (const name of ['index.cjs', 'web.mjs', 'index.d.ts', 'web.d.mts']) {
  fs.writeFileSync(path.join(pkgDir, name), fill(name, vars));
}
// The ES-module face of the Node build re-exports every CommonJS name explicitly.
const req = createRequire(import.meta.url);
const names = Object.keys(req(path.resolve(pkgDir, 'index.cjs'))).sort();
fs.writeFileSync(path.join(pkgDir, 'index.mjs'),
  `// Node ES-module entry: the CommonJS build, re-exported.\nimport keycel from './index.cjs';\n\n` +
  `export const {\n${names.map((n) => `  ${n},`).join('\n')}\n} = keycel;\nexport default keycel;\n`);

const pkg = JSON.parse(fill('package.json', {}));
fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
fs.copyFileSync(path.join(here, 'templates', 'README.md'), path.join(pkgDir, 'README.md'));
console.log(`assembled ${pkgDir}: ${names.length} exports`);
