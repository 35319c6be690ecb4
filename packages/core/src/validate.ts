import { isNonNegativeInteger, isSafeInteger, TollgateError } from "./errors.js";
import type { AdjustBatch, AdmitBatch, CounterStore, LeaseRef, ReadQuery, TicketOp, WindowSpec } from "./store.js";
import { STORE_CONTRACT_VERSION } from "./store.js";

const NAME = /^[A-Za-z0-9_]+$/;
/** Names already seen valid: the hot path checks a Set instead of running the regex (bounded). */
const validNames = new Set<string>(["requests", "tokens", "max_parallel_requests"]);

/**
 * True when `name` matches `[A-Za-z0-9_]+` (counter, gauge and scope names). @internal
 */
export function isName(name: unknown): name is string {
  if (validNames.has(name as string)) return true;
  if (typeof name !== "string" || !NAME.test(name)) return false;
  if (validNames.size < 1024) validNames.add(name);
  return true;
}

function checkName(name: unknown, what: string): void {
  if (!isName(name)) {
    throw new TollgateError("INVALID_ARGUMENT", `${what} must match [A-Za-z0-9_]+, got ${JSON.stringify(name)}`);
  }
}

/** Counter names: as other names, but `window` is the window's own key (`{scope:value}:window`). */
function checkCounterName(name: unknown, what: string): void {
  checkName(name, what);
  if (name === "window")
    throw new TollgateError("INVALID_ARGUMENT", `${what}: "window" is reserved for the window key`);
}

function checkKey(key: unknown, what: string): void {
  if (typeof key !== "string" || key.length === 0) {
    throw new TollgateError("INVALID_SCOPE", `${what} must be a non-empty string, got ${JSON.stringify(key)}`);
  }
}

/** `value` is a non-null object (not an array unless `array`), else INVALID_ARGUMENT naming `what`. */
function checkShape(value: unknown, what: string, array = false): void {
  if (array ? !Array.isArray(value) : typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `${what} must be ${array ? "an array" : "an object"}, got ${value === null ? "null" : typeof value}`,
    );
  }
}

/** The lists of a batch or query are arrays of objects. */
function checkLists(batch: unknown, what: string, lists: readonly string[]): void {
  checkShape(batch, what);
  const b = batch as Record<string, unknown>;
  for (const name of lists) {
    const list = b[name];
    checkShape(list, `${what}.${name}`, true);
    for (let i = 0; i < (list as unknown[]).length; i++) checkShape((list as unknown[])[i], `${what}.${name}[${i}]`);
  }
}

function checkWindow(w: WindowSpec, i: number): void {
  checkKey(w.key, `windows[${i}].key`);
  if (!isSafeInteger(w.windowMs) || w.windowMs <= 0) {
    throw new TollgateError(
      "INVALID_WINDOW",
      `windows[${i}].windowMs must be a positive integer (ms), got ${w.windowMs}`,
    );
  }
  if (w.noHolds !== undefined && typeof w.noHolds !== "boolean") {
    throw new TollgateError("INVALID_ARGUMENT", `windows[${i}].noHolds must be a boolean, got ${String(w.noHolds)}`);
  }
  if (w.algorithm !== "fixed" && w.algorithm !== "sliding") {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `windows[${i}].algorithm must be "fixed" or "sliding", got ${JSON.stringify(w.algorithm)}`,
    );
  }
}

function checkLeaseRef(ref: LeaseRef): void {
  checkShape(ref, "lease");
  if (typeof ref.id !== "string" || ref.id.length === 0) {
    throw new TollgateError("INVALID_ARGUMENT", "lease id must be a non-empty string");
  }
  checkLeaseEntries(ref.gauges);
  checkLeaseEntries(ref.holds);
  if (ref.windows !== undefined) {
    checkShape(ref.windows, "lease windows", true);
    for (const key of ref.windows) checkKey(key, "lease window key");
  }
}

function checkLeaseEntries(entries: LeaseRef["gauges"]): void {
  checkShape(entries, "lease entries", true);
  for (const g of entries) {
    checkShape(g, "lease entry");
    checkKey(g.key, "lease entry key");
    checkName(g.name, "lease entry name");
  }
}

/** Contract 2: an adjustment's ticket (see `TicketOp`). */
function checkTicketOp(ticket: TicketOp, release: LeaseRef | undefined): void {
  checkShape(ticket, "ticket");
  if (typeof ticket.id !== "string" || ticket.id.length === 0) {
    throw new TollgateError("INVALID_ARGUMENT", "ticket id must be a non-empty string");
  }
  if (ticket.finish !== "settle" && ticket.finish !== "release") {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `ticket finish must be "settle" or "release", got ${JSON.stringify(ticket.finish)}`,
    );
  }
  if (!isSafeInteger(ticket.keepMs) || ticket.keepMs <= 0) {
    throw new TollgateError("INVALID_ARGUMENT", `ticket keepMs must be a positive integer, got ${ticket.keepMs}`);
  }
  if (release === undefined || release.id !== ticket.id) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `an adjustment finishing ticket ${ticket.id} must pass \`release\` with the same id (its lease entries and windows), got ${release === undefined ? "none" : release.id}`,
    );
  }
}

/**
 * A window key, or a counter name within one window, given twice in one batch: a store applies each entry on the
 * state it read, so the second would be decided (and clamped) on a stale value.
 */
function checkRepeats(windows: ReadonlyArray<{ key: string; counters: ReadonlyArray<{ name: string }> }>, i: number) {
  const w = windows[i]!;
  for (let j = 0; j < i; j++) {
    if (windows[j]!.key === w.key) {
      throw new TollgateError("INVALID_ARGUMENT", `window ${w.key} appears twice in one batch`);
    }
  }
  for (let j = 1; j < w.counters.length; j++) {
    for (let k = 0; k < j; k++) {
      if (w.counters[k]!.name === w.counters[j]!.name) {
        throw new TollgateError("INVALID_ARGUMENT", `counter ${w.key}:${w.counters[j]!.name} appears twice`);
      }
    }
  }
}

/**
 * Checks an admission before any data is touched. Stores call it so every store rejects the same input the same
 * way (`INVALID_ARGUMENT`, `INVALID_LIMIT`, `INVALID_WINDOW`, `INVALID_AMOUNT`, `INVALID_SCOPE`). Contract 2: a
 * `ticket` must be a boolean, and `true` needs a lease.
 */
export function validateAdmitBatch(batch: AdmitBatch): void {
  checkLists(batch, "admit batch", ["windows", "gauges"]);
  if (batch.ticket !== undefined && typeof batch.ticket !== "boolean") {
    throw new TollgateError("INVALID_ARGUMENT", `ticket must be a boolean, got ${String(batch.ticket)}`);
  }
  let needsLease = batch.gauges.length > 0 || batch.ticket === true;
  batch.windows.forEach((w, i) => {
    checkWindow(w, i);
    checkRepeats(batch.windows, i);
    checkLists(w, `windows[${i}]`, ["counters"]);
    if (w.counters.length === 0) {
      throw new TollgateError("INVALID_ARGUMENT", `windows[${i}] has no counters`);
    }
    for (const c of w.counters) {
      checkCounterName(c.name, `windows[${i}] counter name`);
      if (!isNonNegativeInteger(c.limit)) {
        throw new TollgateError(
          "INVALID_LIMIT",
          `limit of ${w.key}:${c.name} must be a non-negative integer, got ${c.limit}`,
        );
      }
      if (!isNonNegativeInteger(c.amount)) {
        throw new TollgateError(
          "INVALID_AMOUNT",
          `amount for ${w.key}:${c.name} must be a non-negative integer, got ${c.amount}`,
        );
      }
      if (c.hold !== undefined) {
        if (!isNonNegativeInteger(c.hold)) {
          throw new TollgateError(
            "INVALID_AMOUNT",
            `hold for ${w.key}:${c.name} must be a non-negative integer, got ${c.hold}`,
          );
        }
        if (c.hold > 0) {
          if (w.noHolds === true) {
            throw new TollgateError("INVALID_ARGUMENT", `${w.key}:${c.name} holds in a window declared noHolds`);
          }
          needsLease = true;
        }
      }
    }
  });
  batch.gauges.forEach((g, i) => {
    checkKey(g.key, `gauges[${i}].key`);
    checkName(g.name, `gauges[${i}].name`);
    if (!isNonNegativeInteger(g.limit)) {
      throw new TollgateError(
        "INVALID_LIMIT",
        `limit of gauge ${g.key}:${g.name} must be a non-negative integer, got ${g.limit}`,
      );
    }
  });
  if (needsLease) {
    const lease = batch.lease;
    if (!lease || typeof lease.id !== "string" || lease.id.length === 0) {
      throw new TollgateError(
        "INVALID_ARGUMENT",
        "a lease with a non-empty id is required for gauges, holds and tickets",
      );
    }
    if (!isSafeInteger(lease.ttlMs) || lease.ttlMs <= 0) {
      throw new TollgateError("INVALID_ARGUMENT", `lease ttlMs must be a positive integer, got ${lease.ttlMs}`);
    }
  }
}

/**
 * Checks an adjustment before any data is touched. Contract 2: a `ticket` needs a non-empty `id`, `finish` of
 * `"settle"` or `"release"`, a positive integer `keepMs`, and `release` with the same id (`INVALID_ARGUMENT`).
 */
export function validateAdjustBatch(batch: AdjustBatch): void {
  checkLists(batch, "adjust batch", ["windows"]);
  batch.windows.forEach((w, i) => {
    checkWindow(w, i);
    checkLists(w, `windows[${i}]`, ["counters"]);
    checkRepeats(batch.windows, i);
    if (w.expectStart !== undefined && !isSafeInteger(w.expectStart)) {
      throw new TollgateError(
        "INVALID_ARGUMENT",
        `windows[${i}].expectStart must be an integer (ms), got ${w.expectStart}`,
      );
    }
    for (const c of w.counters) {
      checkCounterName(c.name, `windows[${i}] counter name`);
      if (!isSafeInteger(c.delta)) {
        throw new TollgateError(
          "INVALID_AMOUNT",
          `delta for ${w.key}:${c.name} must be a safe integer, got ${c.delta}`,
        );
      }
    }
  });
  if (batch.release !== undefined) checkLeaseRef(batch.release);
  if (batch.ticket !== undefined) checkTicketOp(batch.ticket, batch.release);
  if (batch.readBack !== undefined && typeof batch.readBack !== "boolean") {
    throw new TollgateError("INVALID_ARGUMENT", `readBack must be a boolean, got ${String(batch.readBack)}`);
  }
}

/** Checks a renew call. */
export function validateRenew(lease: LeaseRef, ttlMs: number): void {
  checkLeaseRef(lease);
  if (!isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new TollgateError("INVALID_ARGUMENT", `ttlMs must be a positive integer, got ${ttlMs}`);
  }
}

/** Checks a read query. */
export function validateReadQuery(query: ReadQuery): void {
  checkLists(query, "read query", ["windows", "gauges"]);
  query.windows.forEach((w, i) => {
    checkWindow(w, i);
    checkShape(w.counters, `windows[${i}].counters`, true);
    for (const name of w.counters) checkCounterName(name, `windows[${i}] counter name`);
  });
  query.gauges.forEach((g, i) => {
    checkKey(g.key, `gauges[${i}].key`);
    checkName(g.name, `gauges[${i}].name`);
  });
}

const STORE_METHODS = ["admit", "adjust", "renew", "read", "close"] as const;

/**
 * Throws unless `store` looks like a `CounterStore` of this contract version: `INVALID_ARGUMENT` when it is missing
 * or lacks a method, `CONTRACT_VERSION_MISMATCH` when it implements another version.
 */
export function checkStore(store: unknown, what: string): asserts store is CounterStore {
  if (typeof store !== "object" || store === null) {
    throw new TollgateError("INVALID_ARGUMENT", `${what} must be a CounterStore, got ${String(store)}`);
  }
  const s = store as Record<string, unknown>;
  if (s.contractVersion !== undefined && s.contractVersion !== STORE_CONTRACT_VERSION) {
    throw new TollgateError(
      "CONTRACT_VERSION_MISMATCH",
      `${what} implements contract ${String(s.contractVersion)}, this version of Tollgate needs ${STORE_CONTRACT_VERSION}`,
    );
  }
  for (const m of STORE_METHODS) {
    if (typeof s[m] !== "function") {
      throw new TollgateError("INVALID_ARGUMENT", `${what} is not a CounterStore: it has no ${m}() method`);
    }
  }
  if (s.contractVersion === undefined) {
    throw new TollgateError("INVALID_ARGUMENT", `${what} is not a CounterStore: it declares no contractVersion`);
  }
}
