//! TypeScript declarations for the plain objects the API takes and returns (emitted into the
//! generated `.d.ts`; `tsc` checks them in `make test`).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Unix milliseconds (`Date.now()`), a `Date`, or an RFC 3339 string. */
export type TimeInput = number | Date | string;

/** How credentials arrived. */
export type CredentialMethod = 'basic' | 'bearer' | 'header_pair';

/** Anything with `forEach(value, name)`: a fetch `Headers` or a `Map`. */
export interface HeaderCollection {
  forEach(callback: (value: string, name: string) => void): void;
}

/** Request headers: `Headers`, `Map`, `[name, value]` pairs or a plain object. */
export type HeadersInput =
  | HeaderCollection
  | ReadonlyArray<readonly [string, string]>
  | { readonly [name: string]: string | ReadonlyArray<string> | undefined }
  | null
  | undefined;

export interface CredentialOptions {
  /** Token prefix (default `kc`). */
  prefix?: string;
  /** Client-id header of the header pair (default `x-keycel-client-id`). */
  clientIdHeader?: string;
  /** Secret header of the header pair (default `x-keycel-secret-key`). */
  secretHeader?: string;
  /** Longest credential header value looked at (default 512). */
  maxHeaderLen?: number;
}

/** What the caller wants to do. */
export interface RequestInput {
  /** A dotted action such as `api.read`. */
  action: string;
  /** The account the request touches (checked against the key's account scope: 404). */
  account?: string | null;
  method?: string | null;
  path?: string | null;
  ip?: string | null;
  /** Anything else policies may read as `request.attributes`. */
  attributes?: { [name: string]: unknown };
  /** The request's cost in the key's rate limit and credits (default 1). */
  cost?: number;
}

/** Allow or deny, with everything needed to answer the client and to audit. */
export interface Decision {
  allowed: boolean;
  /** 200 when allowed, else 400, 401, 403, 404, 429 or 503. */
  status: number;
  /** `invalid_token`, `insufficient_scope`, `not_found`, ... (`null` when allowed or missing). */
  code: string | null;
  /** Client-facing message. */
  message: string;
  /** Response headers to send (`WWW-Authenticate`, `Retry-After`). */
  headers: { [name: string]: string };
  keyId: string | null;
  /** Rule ids that decided. */
  matchedRules: string[];
  /** Internal reason, for audit logs only; never send it to the client. */
  reason: string;
  /** The JSON response body to send. */
  body: string;
  /** The lease to release when the response is done (`authorize`, allowed only). */
  lease: Lease | null;
  /** How the credentials arrived (`authorize`, once authenticated). */
  method: CredentialMethod | null;
  /** The stored hash uses other parameters than configured: re-hash on this success. */
  needsRehash: boolean;
  /** argon2 was skipped thanks to the verified-secret cache. */
  cacheHit: boolean;
  /** The previous secret (rotation grace period) was used. */
  viaPreviousSecret: boolean;
  /**
   * With `rehashOnUse`: the hash upgrade for this key (first successful use with outdated
   * argon2 parameters); `run(now)` it after the response and store the record it returns.
   */
  rehash: Rehash | null;
}

/** What `authorize` returns. */
export type Authorization = Decision;

/** A key record as users see it (`toJSON()`, `JSON.stringify(record)`): no hashes. */
export interface KeyRecordView {
  schema: 1;
  id: string;
  name: string;
  description: string;
  kind: 'api' | 'personal';
  user: string | null;
  role: string;
  scopes: string[];
  accounts: 'all' | string[];
  active: boolean;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  rotated_at: string | null;
  /** Until when the secret from before the last rotation still works. */
  previous_secret_valid_until: string | null;
  max_concurrent: number | null;
  metadata: { [key: string]: string };
  /** Requests per window with a burst (GCRA); absent: the policy's default, else unlimited. */
  rate_limit?: { limit: number; per: string; burst: number };
  /** Usage credits granted at `set_at`; absent: unmetered. */
  credits?: { remaining: number; refill: { amount: number; interval: string } | null; set_at: string };
  version: number;
}

/** A key record as stored (schema 1, with the argon2id hashes): `toStorageJSON()`, for stores only. */
export interface KeyRecordJson {
  schema: 1;
  id: string;
  name: string;
  description?: string;
  kind: 'api' | 'personal';
  user?: string | null;
  role: string;
  scopes?: string[];
  accounts: 'all' | string[];
  active: boolean;
  created_at: string;
  updated_at: string;
  expires_at?: string | null;
  rotated_at?: string | null;
  secret_hash: string;
  previous_secret?: { hash: string; valid_until: string } | null;
  max_concurrent?: number | null;
  metadata?: { [key: string]: string };
  /** Requests per window with a burst (GCRA); absent: the policy's default, else unlimited. */
  rate_limit?: { limit: number; per: string; burst: number };
  /** Usage credits granted at `set_at`; absent: unmetered. */
  credits?: { remaining: number; refill: { amount: number; interval: string } | null; set_at: string };
  version: number;
}

/** A user record as stored. */
export interface UserRecordJson {
  schema?: 1;
  id: string;
  roles: string[];
  accounts: 'all' | string[];
  version?: number;
}

/** A policy document as an object (the TOML file's structure). */
export interface PolicyDocument {
  version: 1;
  [section: string]: unknown;
}

export interface EngineOptions {
  /** Name used in policy error messages. */
  origin?: string;
  /** Verified-secret cache entries (0 turns the cache off; default 10000). */
  cacheCapacity?: number;
  /** Age after which a cached verification is redone (`"15m"` or seconds; default 15 minutes). */
  cacheTtl?: string | number;
  /**
   * Upgrade hashes made with outdated argon2 parameters: `authorize` then hands back a
   * `Rehash` (`decision.rehash`) on a key's first successful use (default false).
   */
  rehashOnUse?: boolean;
  /**
   * `"local"` (default): `authorize` counts each key's budget in this isolate; `"external"`:
   * it counts nothing (a Durable Object does, with `Admission` and `engine.ticket`).
   */
  admission?: 'local' | 'external';
  /**
   * `"local"` (default): failed-authentication budgets are counted in this isolate;
   * `"external"`: not here (a Durable Object per subject does, with `FailureBudgets` and
   * `engine.failureSubjects`).
   */
  failureBudgets?: 'local' | 'external';
}

/** argon2id parameters: a preset or explicit costs. */
export type HashChoice = 'owasp' | 'edge' | { mCost: number; tCost: number; pCost: number };

/** Who asks for a key change: an operator name (default `admin`) or a key the policy decides for. */
export type ActorSpec = string | { key: KeyRecordJson | KeyRecord; user?: UserRecordJson | UserRecord | null };

/** What to create. */
export interface KeySpec {
  name: string;
  description?: string;
  kind?: 'api' | 'personal';
  /** The owner of a personal token. */
  user?: string;
  role: string;
  scopes?: string[];
  accounts?: 'all' | string[];
  /** Lifetime: `"90d"`-style text or seconds. */
  expiresIn?: string | number;
  maxConcurrent?: number;
  metadata?: { [key: string]: string };
  active?: boolean;
  /** Rate limit `{ limit, per: "1m", burst }` (default: the policy's, else none). */
  rateLimit?: { limit: number; per: string; burst?: number } | null;
  /** Usage credits granted at creation (default: unmetered). */
  credits?: { remaining: number; refill?: { amount: number; interval: string } | null } | null;
}

export interface IssueOptions {
  /** The user record a personal token belongs to. */
  owner?: UserRecordJson | UserRecord;
  hash?: HashChoice;
  prefix?: string;
  actor?: ActorSpec;
}

export interface RotateOptions {
  /** Keep the old secret valid this long (`"1h"` or seconds); default: revoked at once. */
  grace?: string | number;
  hash?: HashChoice;
  owner?: UserRecordJson | UserRecord;
  actor?: ActorSpec;
}

/** One audit event (the core's JSON shape). */
export interface AuditEvent {
  at: string;
  actor: string;
  action: string;
  key_id: string | null;
  user_id: string | null;
  version: number | null;
  outcome: string;
  detail: string;
}

/** A freshly issued or rotated key: the only time the secret is shown, in every form. */
export interface IssuedKey {
  clientId: string;
  /** `{clientId}_{secretKey}`: give it to the client once. */
  token: string;
  secretKey: string;
  /** A ready `Authorization` header value: `Basic base64("{token}:")`. */
  authorizationBasic: string;
  /** A ready `Authorization` header value: `Bearer {token}`. */
  authorizationBearer: string;
  /** The header pair `{ [clientIdHeader]: clientId, [secretHeader]: secretKey }` (the policy's names). */
  headers: { [name: string]: string };
  /** The record (its `toJSON()` is the public form, without the hash). */
  record: KeyRecord;
  /** The record to store: its storage form as JSON text (with the hash; never send it to a client). */
  recordJson: string;
  audit: AuditEvent[];
}

/** What the host passes for a record: a parsed handle (fastest), JSON text or a plain object. */
export type KeyRecordInput = KeyRecord | KeyRecordJson | string;
export type UserRecordInput = UserRecord | UserRecordJson | string;

export interface Engine {
  /**
   * Authenticates `credentials` against `record` (what your lookup found for
   * `credentials.clientId`; `null` when nothing was found: the same 401 at the same argon2
   * cost) and decides `request` under the policy. An allowed decision carries a `lease`:
   * release it when the response is done. A personal token also needs its owner's `user`.
   * Denials are values (`allowed: false`, status 401/403/404/429/503), not errors; this
   * throws `KeycelError` only for arguments of the wrong type.
   */
  authorize(
    record: KeyRecordInput | null | undefined,
    credentials: Credentials,
    request: RequestInput,
    now: TimeInput,
    user?: UserRecordInput | null,
  ): Authorization;
  /**
   * The failed-authentication subjects `authorize` would charge before argon2 for this attempt
   * (the client address `ip`, then the client id), or `null` when it would charge nothing (a
   * cached secret of a valid key): for an engine built with `failureBudgets: 'external'`,
   * whose budgets a Durable Object per subject keeps (`FailureBudgets`). Same arguments as
   * `authorize`; with `null`, call `authorize` at once (no `await` in between).
   */
  failureSubjects(
    record: KeyRecordInput | null | undefined,
    credentials: Credentials,
    ip: string | null | undefined,
    now: TimeInput,
    user?: UserRecordInput | null,
  ): FailureSubject[] | null;
  /** The policy alone for an authenticated key: account scope, forbid and allow rules. */
  decide(record: KeyRecordInput, request: RequestInput, now: TimeInput, user?: UserRecordInput | null): Decision;
  /**
   * What the key can actually do at `now` (default: the current time): effective scopes after
   * role expansion and, for a personal token (which needs its owner's `user`), the user's caps;
   * effective accounts, deadline and limit. Throws `invalid_record` for a personal token
   * without its user.
   */
  explain(record: KeyRecordInput, user?: UserRecordInput | null, now?: TimeInput): Authority;
}

/** What a key can actually do right now (`engine.explain`, the core's `Authority`). */
export interface Authority {
  key_id: string;
  kind: 'api' | 'personal';
  user: string | null;
  role: string;
  /** Effective scope patterns, sorted. */
  scopes: string[];
  /** Effective accounts (a personal token's intersected with its user's data access). */
  accounts: 'all' | string[];
  /** The instant after which authentication refuses the key (expiry plus leeway), or null. */
  expires_at: string | null;
  max_concurrent: number;
  /** Active and not past `expires_at`. */
  active: boolean;
}

/** The `code` of a `KeycelError`. */
export type KeycelErrorCode =
  | 'invalid_argument'
  | 'invalid_time'
  | 'invalid_record'
  | 'policy_error'
  | 'config_error'
  | 'missing_credentials'
  | 'invalid_credentials'
  | 'invalid_request'
  | 'hash_error'
  | 'rng_failed'
  | 'denied'
  | 'not_found'
  | 'conflict'
  | 'store_error';
"#;
