// Type-checks the framework middleware typings (tsc, no emit).
import { Engine, KeyRecord } from 'keycel/web';
import { keycel as hono, decisionResponse, KeycelConfigError, type HonoLikeContext } from 'keycel/hono';
import { keycel as express, sendDecision, type ExpressLikeRequest } from 'keycel/express';

export function guards(engine: Engine, records: Map<string, KeyRecord>) {
  const lookup = async (id: string) => records.get(id) ?? null;
  const h = hono<HonoLikeContext>({ engine, action: 'api.read', account: 'account_id', lookup });
  const e = express<ExpressLikeRequest>({ engine, action: (req) => (req.method === 'GET' ? 'api.read' : 'api.write'), lookup });
  return { h, e, decisionResponse, sendDecision, isConfig: (x: unknown) => x instanceof KeycelConfigError };
}
