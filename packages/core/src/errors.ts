/**
 * Stable error codes. A code never changes meaning once published; new codes may be added.
 */
export type TollgateErrorCode =
  | "INVALID_ARGUMENT"
  | "INVALID_LIMIT"
  | "INVALID_WINDOW"
  | "INVALID_AMOUNT"
  | "INVALID_SCOPE"
  | "INVALID_DURATION"
  | "INVALID_PRICE"
  | "UNKNOWN_MODEL"
  | "STORE_UNAVAILABLE"
  | "STORE_DATA_CORRUPT"
  | "STORE_CLOSED"
  | "CONTRACT_VERSION_MISMATCH"
  | "RESERVATION_FINISHED";

/**
 * The one base class of every error Tollgate throws on purpose. Branch on `code`, never on the message.
 */
export class TollgateError extends Error {
  readonly code: TollgateErrorCode;

  constructor(code: TollgateErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TollgateError";
    this.code = code;
  }
}

/** Thrown when a store cannot answer (connection refused, timeout). The proxy maps it to HTTP 503. */
export class StoreUnavailableError extends TollgateError {
  /** Name of the store that failed, e.g. `"redis"`. */
  readonly store: string;

  constructor(store: string, message: string, options?: { cause?: unknown }) {
    super("STORE_UNAVAILABLE", `[${store}] ${message}`, options);
    this.name = "StoreUnavailableError";
    this.store = store;
  }
}

/** Non-negative safe integer check shared by validators. */
export function isNonNegativeInteger(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/** Safe integer (any sign). */
export function isSafeInteger(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n);
}
