// Types of keycel's keyring over a host document store and of the management fetch handler.
import type { ActorSpec, Authority, Engine, HashChoice, KeyRecord, KeyRecordView, KeySpec, TimeInput, UserRecord, UserRecordJson } from './web/keycel_wasm.js';

/** The collections keycel keeps documents in. */
export type Collection = 'keys' | 'users' | 'retired';

/**
 * The four-method store protocol (the same as Python's host stores): JSON documents, the
 * records' storage form, by collection and id. `get`/`list` may return parsed objects too.
 */
export interface DocumentStore {
  get(collection: Collection, id: string): Promise<string | object | null | undefined>;
  put(collection: Collection, id: string, document: string): Promise<void>;
  delete(collection: Collection, id: string): Promise<boolean>;
  list(collection: Collection): Promise<Iterable<string | object>>;
}

/** Documents in memory (tests, demos, one-process services). */
export declare class MemoryDocumentStore implements DocumentStore {
  constructor();
  get(collection: Collection, id: string): Promise<string | null>;
  put(collection: Collection, id: string, document: string): Promise<void>;
  delete(collection: Collection, id: string): Promise<boolean>;
  list(collection: Collection): Promise<string[]>;
}

/** What a Durable Object's `state.storage` offers (the part keycel uses). */
export interface DurableObjectStorageLike {
  get(key: string): Promise<unknown>;
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<boolean>;
  list(options: { prefix: string }): Promise<Map<string, unknown>>;
}

/** A Durable Object's storage as a document store (keys `<prefix><collection>/<id>`, prefix `keycel/`). */
export declare class DurableObjectDocumentStore implements DocumentStore {
  constructor(storage: DurableObjectStorageLike, options?: { prefix?: string });
  get(collection: Collection, id: string): Promise<string | null>;
  put(collection: Collection, id: string, document: string): Promise<void>;
  delete(collection: Collection, id: string): Promise<boolean>;
  list(collection: Collection): Promise<string[]>;
}

/** A record's public form: every field but the hashes (the WASM binding's `KeyRecordView`, one definition). */
export type KeyView = KeyRecordView;

/** A key created or rotated by a `Keyring`: the secret once, the record in its public form. */
export interface RevealedKey {
  clientId: string;
  token: string;
  secretKey: string;
  authorizationBasic: string;
  authorizationBearer: string;
  headers: { [name: string]: string };
  record: KeyView;
}

export interface KeyringOptions {
  /** argon2id parameters for new secrets (default: the engine's, else OWASP). */
  hash?: HashChoice;
  /** Client id prefix (default: the engine's, else `kc`). */
  prefix?: string;
}

/** Who acts, and when (default: the operator `admin`, `Date.now()`). */
export interface CallOptions {
  actor?: ActorSpec;
  now?: TimeInput;
}

export interface KeyFilter {
  user?: string;
  kind?: 'api' | 'personal';
  active?: boolean;
}

/** Settings changed in one version-checked write (absent: unchanged). */
export interface KeyChanges {
  name?: string;
  description?: string;
  role?: string;
  scopes?: string[];
  accounts?: 'all' | string[];
  active?: boolean;
  /** `null`: never expires. */
  expiresAt?: TimeInput | null;
  /** `null`: the policy default. */
  maxConcurrent?: number | null;
  metadata?: { [key: string]: string };
  /** `{ limit, per: "1m", burst }`; `null`: none (the policy default applies). */
  rateLimit?: RateLimitSpec | null;
  /** Usage credits granted now (a new count); `null`: unmetered. */
  credits?: CreditsSpec | null;
}

export interface RateLimitSpec {
  limit: number;
  per: string;
  burst?: number;
}

export interface CreditsSpec {
  remaining: number;
  refill?: { amount: number; interval: string } | null;
}

/**
 * Every keyring operation, async, over a document store; the core decides and checks
 * versions. A lost race throws `KeycelError` `conflict` and writes nothing (no automatic
 * retry: re-read and decide); a failing store throws `store_error`.
 */
export declare class Keyring {
  constructor(engine: Engine | null, store: DocumentStore, options?: KeyringOptions);
  create(spec: KeySpec, options?: CallOptions): Promise<RevealedKey>;
  get(id: string, options?: CallOptions): Promise<KeyView>;
  list(filter?: KeyFilter | null, options?: CallOptions): Promise<KeyView[]>;
  update(id: string, changes: KeyChanges, options?: CallOptions): Promise<KeyView>;
  rename(id: string, name: string, options?: CallOptions): Promise<KeyView>;
  setDescription(id: string, description: string, options?: CallOptions): Promise<KeyView>;
  /** Same as `setDescription` (the Python name). */
  describe(id: string, description: string, options?: CallOptions): Promise<KeyView>;
  setRole(id: string, role: string, options?: CallOptions): Promise<KeyView>;
  setScopes(id: string, scopes: string[], options?: CallOptions): Promise<KeyView>;
  setAccounts(id: string, accounts: 'all' | string[], options?: CallOptions): Promise<KeyView>;
  setExpiry(id: string, expiresAt: TimeInput | null, options?: CallOptions): Promise<KeyView>;
  setMaxConcurrent(id: string, maxConcurrent: number | null, options?: CallOptions): Promise<KeyView>;
  setMetadata(id: string, metadata: { [key: string]: string }, options?: CallOptions): Promise<KeyView>;
  setRateLimit(id: string, rateLimit: RateLimitSpec | null, options?: CallOptions): Promise<KeyView>;
  setCredits(id: string, credits: CreditsSpec | null, options?: CallOptions): Promise<KeyView>;
  setActive(id: string, active: boolean, options?: CallOptions): Promise<KeyView>;
  activate(id: string, options?: CallOptions): Promise<KeyView>;
  deactivate(id: string, options?: CallOptions): Promise<KeyView>;
  /** New secret; the old one dies now, or after `grace` (`"1h"` or seconds). */
  rotate(id: string, options?: CallOptions & { grace?: string | number }): Promise<RevealedKey>;
  delete(id: string, options?: CallOptions): Promise<boolean>;
  putUser(user: UserRecordJson | UserRecord, options?: CallOptions): Promise<UserRecordJson>;
  getUser(id: string, options?: CallOptions): Promise<UserRecordJson | null>;
  listUsers(options?: CallOptions): Promise<UserRecordJson[]>;
  /** Removes a user and their personal tokens; resolves to how many tokens went. */
  removeUser(id: string, options?: CallOptions): Promise<number>;
  /** What the key can do (needs an engine). */
  explain(id: string, options?: CallOptions): Promise<Authority>;
  /** The stored record as a handle, for `engine.authorize` / the middleware's `lookup`. */
  findKey(clientId: string): Promise<KeyRecord | null>;
  findUser(userId: string): Promise<UserRecord | null>;
}

export interface ManagementOptions {
  engine: Engine;
  store: DocumentStore;
  /** The mount path to strip, e.g. `/manage` (default: none). */
  prefix?: string;
  /** The clock (default `Date.now`). */
  now?: () => TimeInput;
  /** The client address failed authentications are charged to. */
  clientIp?: (request: Request) => string | null | undefined;
  hash?: HashChoice;
}

/** The management API as a fetch handler (workerd, Deno, Node >= 18, Hono). */
export declare function managementHandler(options: ManagementOptions): (request: Request) => Promise<Response>;
