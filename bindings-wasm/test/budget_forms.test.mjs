// The budget input shapes of tests/vectors/forms/budgets.json through the JS key spec
// (`rateLimit`, `credits` of `Keyring.create`): the same record fields, or the same
// field-named invalid_record error, as core's parser and Python's keywords give (issue 13).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Engine, Keyring, MemoryDocumentStore } from 'keycel';
import { CHEAP, DEFAULT_POLICY, REPO, rejects } from './helpers.mjs';

const forms = JSON.parse(fs.readFileSync(path.join(REPO, 'tests', 'vectors', 'forms', 'budgets.json'), 'utf8'));
const engine = new Engine(DEFAULT_POLICY);
const NOW = Date.parse(forms.now);
const dump = (store) => JSON.stringify([...store.collections].map(([c, m]) => [c, [...m]]));
const JS_NAME = { rate_limit: 'rateLimit', credits: 'credits' };

test('the vector file has its cases', () => {
  assert.ok(forms.cases.length >= 20);
});

for (const c of forms.cases) {
  test(`budget input form: ${c.name}`, async () => {
    const store = new MemoryDocumentStore();
    const ring = new Keyring(engine, store, { hash: CHEAP });
    const before = dump(store);
    const [field] = Object.keys(c.input);
    const spec = { name: 'k', role: 'reader', [JS_NAME[field]]: c.input[field] };
    if (c.expect.error) {
      const e = await rejects(ring.create(spec, { now: NOW }), c.expect.error.code);
      assert.equal(e.field, c.expect.error.field, e.message);
      assert.equal(dump(store), before, 'a refused budget wrote');
      return;
    }
    const k = await ring.create(spec, { now: NOW });
    assert.deepEqual(k.record[field], c.expect[field]);
  });
}
