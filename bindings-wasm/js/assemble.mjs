// Assembles the npm package `keycel` in pkg/ from the two wasm-bindgen outputs
// (build/node, build/web) and the optimized .wasm. Every patch of generated code checks
// that its pattern occurs exactly once, so a wasm-bindgen upgrade fails here, loudly.
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
  const n = typeof from === 'string' ? text.split(from).length - 1 : (text.match(new RegExp(from.source, 'g')) || []).length;
  if (n !== 1) throw new Error(`${file}: expected exactly one ${from}, found ${n}`);
  return text.replace(from, to);
}

function glueSnippet(dir) {
  const snippets = path.join(dir, 'snippets');
  const found = fs.readdirSync(snippets).map((d) => path.join(snippets, d, 'js', 'glue.js')).filter((p) => fs.existsSync(p));
  if (found.length !== 1) throw new Error(`expected one glue.js snippet in ${snippets}, found ${found.length}`);
  return found[0];
}

// Programming errors wasm-bindgen detects (a wrong or freed handle) throw KeycelError
// `invalid_argument`, like every other bad input.
const PATCHES = [
  ['throw new Error(`expected instance of ${klass.name}`);',
    "throw makeError('invalid_argument', `expected an instance of ${klass.name}`, undefined);"],
  ['throw new Error(getStringFromWasm0(arg0, arg1));',
    "throw makeError('invalid_argument', getStringFromWasm0(arg0, arg1), undefined);"],
];

/** Copies one wasm-bindgen output, with the glue snippet at the stable path `<target>/glue.js`. */
function target(name, { glueImport, wasmFrom, wasmTo, cjs }) {
  const src = path.join(buildDir, name);
  const dst = path.join(pkgDir, name);
  fs.mkdirSync(dst, { recursive: true });
  for (const f of [`${STEM}.js`, `${STEM}.d.ts`]) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  const f = path.join(dst, `${STEM}.js`);
  let js = fs.readFileSync(f, 'utf8');
  js = replaceOnce(js, glueImport, cjs ? "require('./glue.js')" : "from './glue.js'", f);
  js = replaceOnce(js, wasmFrom, wasmTo, f);
  for (const [from, to] of PATCHES) js = replaceOnce(js, from, to, f);
  fs.writeFileSync(f, js);
  let glue = fs.readFileSync(glueSnippet(src), 'utf8');
  if (cjs) {
    const names = [...glue.matchAll(/^export (?:class|function) (\w+)/gm)].map((m) => m[1]);
    glue = glue.replace(/^export (class|function) /gm, '$1 ');
    if (/^\s*export\b/m.test(glue)) throw new Error('js/glue.js: only `export class` / `export function` can be converted');
    glue = `'use strict';\n${glue}\nmodule.exports = { ${names.join(', ')} };\n`;
  }
  fs.writeFileSync(path.join(dst, 'glue.js'), glue);
  fs.copyFileSync(path.join(here, 'templates', 'glue.d.ts'), path.join(dst, 'glue.d.ts'));
  fs.writeFileSync(path.join(dst, 'package.json'), `{ "type": "${cjs ? 'commonjs' : 'module'}" }\n`);
}

fs.rmSync(pkgDir, { recursive: true, force: true });
fs.mkdirSync(pkgDir, { recursive: true });
// One .wasm at the package root serves both builds (wasm-bindgen emits identical bytes).
fs.copyFileSync(wasmFile, path.join(pkgDir, 'keycel_bg.wasm'));

// Node (CommonJS, any Node >= 18): the glue becomes CommonJS too.
target('node', {
  glueImport: /require\(String\.raw`\.\/snippets\/[^`]+\/js\/glue\.js`\)/,
  wasmFrom: 'const wasmPath = `${__dirname}/keycel_wasm_bg.wasm`;',
  wasmTo: "const wasmPath = require('path').join(__dirname, '..', 'keycel_bg.wasm');",
  cjs: true,
});
// Web (ES module, `init()` / `initSync({ module })`): workerd, Deno, browsers, bundlers.
target('web', {
  glueImport: /from '\.\/snippets\/[^']+\/js\/glue\.js'/,
  wasmFrom: "new URL('keycel_wasm_bg.wasm', import.meta.url)",
  wasmTo: "new URL('../keycel_bg.wasm', import.meta.url)",
  cjs: false,
});

for (const name of ['index.cjs', 'web.mjs', 'index.d.ts', 'web.d.mts', 'package.json', 'README.md',
  'framework.mjs', 'framework.d.ts', 'keyring.mjs', 'keyring.d.ts', 'hono.mjs', 'hono.d.mts', 'express.mjs', 'express.d.ts']) {
  fs.copyFileSync(path.join(here, 'templates', name), path.join(pkgDir, name));
}

/**
 * The CommonJS twin of a framework module (ES module source: only relative `import { ... }`,
 * `export function` / `export class` and `export { ... }` are converted; anything else fails).
 */
function toCommonJs(name) {
  const file = path.join(here, 'templates', `${name}.mjs`);
  let src = fs.readFileSync(file, 'utf8');
  const names = [];
  src = src.replace(/^import \{([^}]+)\} from '\.\/(\w+)\.mjs';$/gm, (_, list, mod) => `const {${list}} = require('./${mod}.cjs');`);
  src = src.replace(/^export \{([^}]+)\};$/gm, (_, list) => {
    names.push(...list.split(',').map((n) => n.trim()).filter(Boolean));
    return '';
  });
  src = src.replace(/^export (async function|function|class) (\w+)/gm, (_, kind, n) => {
    names.push(n);
    return `${kind} ${n}`;
  });
  if (/^\s*(export|import)\b/m.test(src)) throw new Error(`${file}: only relative named imports and named exports can be converted`);
  fs.writeFileSync(path.join(pkgDir, `${name}.cjs`), `'use strict';\n${src}\nmodule.exports = { ${names.join(', ')} };\n`);
}
toCommonJs('framework');
toCommonJs('express');
toCommonJs('keyring');
// The ES-module face of the Node build re-exports every CommonJS name explicitly.
const names = Object.keys(createRequire(import.meta.url)(path.resolve(pkgDir, 'index.cjs'))).sort();
fs.writeFileSync(path.join(pkgDir, 'index.mjs'),
  `// keycel for Node (ES module): the CommonJS build, re-exported.\nimport keycel from './index.cjs';\n\n` +
  `export const {\n${names.map((n) => `  ${n},`).join('\n')}\n} = keycel;\nexport default keycel;\n`);
console.log(`assembled ${pkgDir}: ${names.length} exports`);
