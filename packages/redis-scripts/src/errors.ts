import { StoreUnavailableError, TollgateError } from "@tollgate/core";

/** Marker the scripts raise for malformed stored values (`TOLLGATE_CORRUPT <key> <why>`). */
export const CORRUPT_MARKER = "TOLLGATE_CORRUPT";

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** True for a script error caused by stored data: a malformed value or a key of the wrong type. */
export function isDataCorruptError(err: unknown): boolean {
  const msg = messageOf(err);
  return msg.includes(CORRUPT_MARKER) || msg.includes("WRONGTYPE");
}

/** True for Redis' "script not cached" reply, the signal to fall back from EVALSHA to EVAL. */
export function isNoScriptError(err: unknown): boolean {
  return messageOf(err).includes("NOSCRIPT");
}

/**
 * Maps anything a backend call threw to the contract's errors: `TollgateError`s pass through, data errors
 * become `TollgateError("STORE_DATA_CORRUPT")`, everything else (connection refused, timeouts, cluster
 * down, ...) becomes a `StoreUnavailableError`.
 */
export function toStoreError(store: string, err: unknown): TollgateError {
  if (err instanceof TollgateError) return err;
  if (isDataCorruptError(err)) {
    return new TollgateError("STORE_DATA_CORRUPT", `[${store}] ${messageOf(err)}`, { cause: err });
  }
  return new StoreUnavailableError(store, messageOf(err), { cause: err });
}
