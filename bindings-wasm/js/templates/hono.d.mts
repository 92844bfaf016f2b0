import type { KeycelDecision, KeycelOptions } from './framework.js';
export type { KeycelDecision, KeycelOptions } from './framework.js';
export { KeycelConfigError } from './framework.js';

/** The subset of Hono's Context the middleware uses (kept structural: hono is a peer dependency). */
export interface HonoLikeContext {
  req: { raw: Request; url: string; method: string; param(): Record<string, string>; header(name: string): string | undefined };
  res: Response;
  set(key: 'keycel', value: KeycelDecision): void;
}

/** A Response for a denied decision (status, headers and the JSON body from core). */
export declare function decisionResponse(decision: KeycelDecision): Response;

/** Hono middleware authorizing `action`; the allowed decision is `c.get('keycel')`. */
export declare function keycel<C extends HonoLikeContext = HonoLikeContext>(
  options: KeycelOptions<C>,
): (c: C, next: () => Promise<void>) => Promise<Response | void>;
