// Type-checks the edge/browser typings as an ES-module consumer sees them (tsc, no emit).
import init, { initSync, Engine, KeyRecord, KeycelError, type Authorization } from 'keycel/web';

export async function boot(bytes: Uint8Array, policy: string): Promise<Engine> {
  initSync({ module: bytes });
  await init();
  return new Engine(policy, { cacheCapacity: 100, cacheTtl: '5m' });
}

export function check(engine: Engine, headers: { [name: string]: string }, record: string): Authorization | string {
  try {
    const creds = engine.parseCredentials(headers);
    const a = engine.authorize(KeyRecord.parse(record), creds, { action: 'api.read' }, new Date());
    a.lease?.release();
    return a;
  } catch (e) {
    if (e instanceof KeycelError && e.decision) return e.decision.body;
    throw e;
  }
}

// The keyring over a host document store and the management fetch handler (issue 15).
import { Keyring, MemoryDocumentStore, DurableObjectDocumentStore, managementHandler, type DocumentStore, type KeyView, type RevealedKey } from 'keycel/web';

export async function manage(engine: Engine, storage: { get(k: string): Promise<unknown>; put(k: string, v: string): Promise<void>; delete(k: string): Promise<boolean>; list(o: { prefix: string }): Promise<Map<string, unknown>> }): Promise<string> {
  const store: DocumentStore = new DurableObjectDocumentStore(storage);
  const ring = new Keyring(engine, new MemoryDocumentStore(), { hash: 'edge' });
  const made: RevealedKey = await ring.create({ name: 'a', role: 'admin' }, { now: Date.now() });
  const views: KeyView[] = await ring.list({ kind: 'api' }, { actor: 'ops' });
  await ring.update(made.clientId, { name: 'b', expiresAt: null, maxConcurrent: 3 });
  const n: number = await ring.removeUser('u_1');
  try {
    await ring.rotate(made.clientId, { grace: '1h' });
  } catch (e) {
    if (e instanceof KeycelError && e.code === 'conflict') return 'retry';
  }
  const handler: (r: Request) => Promise<Response> = managementHandler({ engine, store, prefix: '/manage' });
  const r = await handler(new Request('https://x/manage/keys'));
  return `${views.length} ${n} ${r.status}`;
}

import { FailureBudgets, type FailureSubject, type FailureAnswer } from 'keycel/web';

// Failure budgets in a Durable Object per subject (examples/durable-admission/).
export function failures(policy: string, headers: { [name: string]: string }, ip: string | null): FailureAnswer[] {
  const engine = new Engine(policy, { admission: 'external', failureBudgets: 'external' });
  const budgets = new FailureBudgets(policy, 'policy.toml');
  const subjects: FailureSubject[] | null = engine.failureSubjects(null, engine.parseCredentials(headers), ip, Date.now());
  const answers = (subjects ?? []).map((s) => budgets.charge(s, Date.now()));
  for (const a of answers) {
    if (!a.allowed) return [a, { allowed: true }, ...(a.status === 429 ? [] : [a])];
  }
  budgets.refund({ kind: 'client_id', key: 'kc_x' }, new Date());
  return answers.concat(budgets.tracked > 0 ? [] : [{ allowed: true }]);
}
