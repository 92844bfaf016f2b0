// Type-checks the Node typings as a CommonJS consumer sees them (tsc, no emit).
import keycel = require('keycel');
import { Engine, KeycelError, KeyRecord, parseCredentials, issueKey } from 'keycel';
import type { Authority, Authorization, Decision, IssuedKey, KeycelErrorCode, KeyRecordJson, KeyRecordView, Rehash, RequestInput, TimeInput } from 'keycel';

export function handle(engine: Engine, headers: Array<[string, string]>, recordJson: string): number {
  const creds = engine.parseCredentials(headers);
  const id: string = creds.clientId;
  const record: KeyRecord | null = id.length > 0 ? KeyRecord.parse(recordJson) : null;
  const req: RequestInput = { action: 'api.read', account: 'acc_1', attributes: { tier: 'gold' } };
  const now: TimeInput = Date.now();
  const a: Authorization = engine.authorize(record, creds, req, now);
  const d: Decision = a;
  try {
    return d.status;
  } finally {
    a.lease?.release();
  }
}

export function errors(e: unknown): KeycelErrorCode | undefined {
  if (e instanceof KeycelError) return e.code;
  if (e instanceof keycel.KeycelError) return e.code;
  return undefined;
}

export function admin(): string {
  const issued: IssuedKey = issueKey({ name: 'ci', role: 'reader', expiresIn: '90d' }, new Date(), { hash: 'edge' });
  const creds = parseCredentials(new Map([['authorization', `Bearer ${issued.token}`]]));
  return creds.method + issued.record.id + issued.recordJson;
}

export function forms(engine: Engine): string {
  const issued: IssuedKey = engine.issueKey({ name: 'ci', role: 'reader' }, Date.now(), { hash: 'edge' });
  const view: KeyRecordView = issued.record.toJSON();
  const stored: KeyRecordJson = issued.record.toStorageJSON();
  const text: string = issued.record.toStorageJsonString();
  const pair: { [name: string]: string } = issued.headers;
  const creds = engine.parseCredentials({ authorization: issued.authorizationBasic });
  const d = new Engine('version = 1', { rehashOnUse: true }).authorize(issued.record, creds, { action: 'api.read' }, Date.now());
  const r: Rehash | null = d.rehash;
  const next: string | null | undefined = r?.run(Date.now());
  return view.id + stored.secret_hash + text + Object.keys(pair).join() + issued.authorizationBearer + String(next);
}

export function explain(engine: Engine, record: KeyRecord): string {
  const a: Authority = engine.explain(record, null, Date.now());
  const roles: { [role: string]: string[] } = engine.roles();
  const scopes: { [scope: string]: string } = engine.scopes();
  return a.scopes.join() + String(a.max_concurrent) + Object.keys(roles).join() + Object.keys(scopes).join();
}

// The keyring and management handler from the CommonJS build (issue 15).
export async function nodeKeyring(engine: Engine): Promise<number> {
  const ring = new keycel.Keyring(engine, new keycel.MemoryDocumentStore());
  const made = await ring.create({ name: 'a', role: 'admin' });
  const code: KeycelErrorCode = 'store_error';
  const handler = keycel.managementHandler({ engine, store: new keycel.MemoryDocumentStore() });
  const r: Response = await handler(new Request("http://x/keys"));
  return made.record.version + code.length + r.status;
}
