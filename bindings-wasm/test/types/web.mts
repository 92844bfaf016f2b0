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
