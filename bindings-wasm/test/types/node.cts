// Type-checks the Node typings as a CommonJS consumer sees them (tsc, no emit).
import keycel = require('keycel');
import { Engine, KeycelError, KeyRecord, parseCredentials, issueKey } from 'keycel';
import type { Authorization, Decision, IssuedKey, KeycelErrorCode, RequestInput, TimeInput } from 'keycel';

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
