import type { Decision, KeycelErrorCode } from './keycel_wasm.js';

/** Every error keycel throws. `code` says what went wrong, machine-readably. */
export declare class KeycelError extends Error {
  constructor(code: KeycelErrorCode, message: string, extra?: object);
  readonly name: 'KeycelError';
  readonly code: KeycelErrorCode;
  /** `invalid_record`: the record field at fault. */
  readonly field?: string;
  /** Credential errors and `denied`: the HTTP status to answer with. */
  readonly status?: number;
  /** Credential errors and `denied`: the decision to answer with (`decision.body`). */
  readonly decision?: Decision;
  /** `policy_error`: where. */
  readonly file?: string;
  readonly rule?: string | null;
  readonly line?: number | null;
  readonly column?: number | null;
}
