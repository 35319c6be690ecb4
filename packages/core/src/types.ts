import type { WindowAlgorithm } from "./store.js";

/** The limit types, with LiteLLM's names (they appear in headers and 429 texts). */
export type LimitType = "requests" | "tokens" | "max_parallel_requests";

/**
 * A rate-limit descriptor: one scope (`api_key`, `team`, `team_member`, ...) and its value, plus the
 * limits that apply to it. A descriptor without any limit is ignored (it writes nothing).
 */
export interface Descriptor {
  /** Scope kind, e.g. `"api_key"`, `"team_member"`. `[A-Za-z0-9_]+`. */
  scope: string;
  /** Scope value, e.g. a hashed key or `"team_1:user_2"`. Non-empty; `{` and `}` are not allowed. */
  value: string;
  /** Requests allowed per window. */
  requests?: number;
  /** Tokens allowed per window. */
  tokens?: number;
  /** Maximum in-flight requests. */
  maxParallel?: number;
  /** Window length in milliseconds. @default 60000 */
  windowMs?: number;
  /** @default "fixed" (anchored at first use, LiteLLM's semantics) */
  algorithm?: WindowAlgorithm;
  /** Count and report as would-deny, never deny. @default false */
  shadow?: boolean;
  /**
   * Enforce only when this returns true (evaluated at each admission). The counters are still
   * counted while it is false. Used for LiteLLM's "dynamic" limits. @default always enforced
   */
  enforceWhen?: () => boolean;
}

/** The status of one limit of one descriptor, as reported in headers. */
export interface LimitStatus {
  scope: string;
  value: string;
  type: LimitType;
  /** The configured limit. */
  limit: number;
  /** Capacity left after this request (never negative). */
  remaining: number;
  /** Current usage (after this request when admitted). */
  used: number;
  /** When the current window ends (ms since epoch); for gauges, the earliest lease expiry or now. */
  resetAt: number;
  /** Window length in ms (absent for `max_parallel_requests`). */
  windowMs?: number;
  /** The limit is over (or would be) but is not enforced: shadow mode or an inactive condition. */
  wouldDeny: boolean;
  /** False when the descriptor is in shadow mode or its condition is off. */
  enforced: boolean;
}

/** Why a request was denied: the binding limit. */
export interface Denial extends LimitStatus {
  /** Exact time until the request could be admitted, in ms (not simply the whole window). */
  retryAfterMs: number;
  /** The store's clock when the decision was made. */
  now: number;
}
