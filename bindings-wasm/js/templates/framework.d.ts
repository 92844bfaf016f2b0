// Types shared by keycel/hono and keycel/express.
import type { Authorization, Decision, Engine, KeyRecord, UserRecord } from './web.mjs';

/** A middleware configuration mistake. */
export declare class KeycelConfigError extends Error {
  readonly name: 'KeycelConfigError';
}

/** What a record lookup may return: a parsed record (fastest), its JSON object, or nothing. */
export type LookupResult = KeyRecord | object | null | undefined;

export interface KeycelOptions<Req> {
  /** The engine that decides. */
  engine: Engine;
  /** The action to authorize, or a function of the request. */
  action: string | ((req: Req) => string);
  /** The route parameter holding the account (a route without it fails closed), or a function. */
  account?: string | ((req: Req) => string | null | undefined) | null;
  /** The key record for a client id (your KV / database read), sync or async. */
  lookup: (clientId: string) => LookupResult | Promise<LookupResult>;
  /** The user record of a personal token's user. */
  lookupUser?: ((userId: string) => UserRecord | object | null | undefined | Promise<UserRecord | object | null | undefined>) | null;
  /** The client address for `request.ip` in policies (Hono: none by default; Express: `req.ip`). */
  ip?: ((req: Req) => string | null | undefined) | null;
  /** The clock (default `Date.now`). */
  now?: () => number | Date | string;
}

/** The decision an allowed request carries (`c.get('keycel')`, `req.keycel`). */
export type KeycelDecision = Authorization | Decision;
