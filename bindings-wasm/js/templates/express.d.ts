import type { KeycelDecision, KeycelOptions } from './framework.js';
export type { KeycelDecision, KeycelOptions } from './framework.js';
export { KeycelConfigError } from './framework.js';

/** The subset of Express's request the middleware uses (express is a peer dependency). */
export interface ExpressLikeRequest {
  headers: object;
  params: Record<string, string>;
  method: string;
  path: string;
  ip?: string;
  keycel?: KeycelDecision;
}

/** The subset of Express's response the middleware uses. */
export interface ExpressLikeResponse {
  status(code: number): unknown;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
  once(event: 'finish' | 'close', listener: () => void): unknown;
}

/** Answers a denied decision (status, headers and the JSON body from core). */
export declare function sendDecision(res: ExpressLikeResponse, decision: KeycelDecision): void;

/** Express middleware authorizing `action`; the allowed decision is `req.keycel`. */
export declare function keycel<Req extends ExpressLikeRequest = ExpressLikeRequest>(
  options: KeycelOptions<Req>,
): (req: Req, res: ExpressLikeResponse, next: (err?: unknown) => void) => void;
