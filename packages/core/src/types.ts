import type { WindowAlgorithm } from "./store.js";

/** The limit types, with LiteLLM's names (they appear in headers and 429 texts). */
export type LimitType = "requests" | "tokens" | "max_parallel_requests";

/**
 * Which tokens a descriptor's `tokens` limit counts (LiteLLM's `tpm_limit_type`, and the `_itpm` / `_otpm` scopes):
 * `"input"` the prompt tokens, `"output"` the completion tokens, `"total"` both.
 */
export type TokenType = "total" | "input" | "output";

/**
 * A token amount split by kind: an estimate to reserve, or a usage to settle. Input limits count `input`, output
 * limits `output`, total limits the sum. `estimateRequestTokens` answers one.
 */
export interface TokenAmounts {
  /** Prompt tokens (for usage: LiteLLM counts prompt tokens minus cached ones). Non-negative integer. */
  input: number;
  /** Completion tokens. Non-negative integer. */
  output: number;
}

/**
 * What a settle, fail or release of a reservation did, the same shape across the library (the limiter, budgets and
 * the gate; `A` is what an applied outcome carries besides its status):
 * - `applied`: the store applied it (exactly once, whatever the retries);
 * - `duplicate`: the reservation was already finished (by this process or another): nothing was applied;
 * - `expired`: a release of a reservation the store no longer knows (its lease expired): nothing to undo.
 */
// biome-ignore lint/complexity/noBannedTypes: the default adds nothing to an applied outcome
export type Outcome<A = {}> = ({ status: "applied" } & A) | { status: "duplicate" } | { status: "expired" };

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
  /**
   * Which tokens the `tokens` limit counts: the input amount, the output amount, or both (see {@link TokenType}).
   * An admission reserves, and a settle charges, each descriptor's own amount. @default "total"
   */
  tokenType?: TokenType;
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
