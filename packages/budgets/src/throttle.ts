import { TollgateError } from "@tollgate/core";
import { isNonNegativeInteger } from "@tollgate/core/internal";

/**
 * LiteLLM's budget throttle: an over-budget key that opted in keeps working with its rate limits scaled to
 * `max(1, floor(limit * pct))` instead of being blocked.
 * A `null`/`undefined` limit (no limit) is returned unchanged.
 * @throws TollgateError `INVALID_ARGUMENT` when `pct` is outside (0, 1], `INVALID_LIMIT` for a bad limit.
 */
export function throttledLimit<T extends number | null | undefined>(limit: T, pct: number): T {
  if (!(typeof pct === "number" && pct > 0 && pct <= 1)) {
    throw new TollgateError("INVALID_ARGUMENT", `budget throttle percentage must be in (0, 1], got ${pct}`);
  }
  if (limit === null || limit === undefined) return limit;
  if (!isNonNegativeInteger(limit)) {
    throw new TollgateError("INVALID_LIMIT", `limit must be a non-negative integer, got ${limit}`);
  }
  return Math.max(1, Math.floor(limit * pct)) as T;
}
