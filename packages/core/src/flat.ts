/**
 * The in-process fast path of the CounterStore contract.
 *
 * A store whose data lives in the caller's process (the memory store) can take admissions and adjustments in a
 * flat form: one reusable {@link FlatBatch} in, one reusable {@link FlatResult} out, no promise and no per-counter
 * objects. Semantics are exactly those of `admit` / `adjust` (see store.ts); only the shape differs. The engine uses
 * it when a store declares it (`store.capabilities.flat`, see {@link flatStoreOf}) and the contract's object form
 * otherwise.
 *
 * Window handles: the result of a flat admission names, per window, the store's own object for it (opaque). An
 * adjustment may pass it back instead of a lookup by key; the store then applies the window guard to that object.
 * A handle whose window has meanwhile been dropped (evicted) takes the delta without effect on live data, which is
 * exactly what the guard asks for: a counter that was forgotten is not the window that was charged.
 */
import type {
  AdjustBatch,
  AdjustResult,
  AdjustWindowOp,
  AdmitBatch,
  AdmitResult,
  CounterDelta,
  CounterOp,
  CounterState,
  CounterStore,
  DeniedAt,
  GaugeOp,
  GaugeState,
  LeaseRef,
  TicketState,
  WindowOp,
  WindowState,
} from "./store.js";

/** Reason codes of {@link FlatResult.denied}. */
export const FLAT_NOT_DENIED = 0;
export const FLAT_DENIED_COUNTER = 1;
export const FLAT_DENIED_GAUGE = 2;
/** Contract 2: the admission's ticket was already finished; nothing was applied. */
export const FLAT_DENIED_TICKET = 3;

/**
 * A batch in flat form, reused from call to call: fill it with {@link FlatBatch.reset}, {@link FlatBatch.window},
 * {@link FlatBatch.counter} and {@link FlatBatch.gauge}. Counters belong to the window added last.
 */
export class FlatBatch {
  windowCount = 0;
  readonly keys: string[] = [];
  readonly windowMs: number[] = [];
  readonly sliding: boolean[] = [];
  /** Per window: `WindowSpec.noHolds` (its counters never hold: remote stores skip hold data). */
  readonly noHolds: boolean[] = [];
  /**
   * Per window, a handle from an earlier answer, or undefined to look the window up by key. Adjust: the handle of
   * the admission being reconciled (with a guard: the window charged, see {@link expectStart}), or a hint. Admit: a
   * hint, the handle the last admission of this key got; the store uses a hint only while it is still the key's
   * live window.
   */
  readonly handles: unknown[] = [];
  /**
   * Adjust: the window guard (`expectStart`), or NaN for none. With a guard, `handles[i]` is the window charged
   * (used even when the store has since dropped it); without one, only a hint (used while it is the key's window).
   */
  readonly expectStart: number[] = [];
  /** Counters of window `i` are the flat indices `[i === 0 ? 0 : counterEnd[i - 1], counterEnd[i])`. */
  readonly counterEnd: number[] = [];

  counterCount = 0;
  readonly names: string[] = [];
  readonly limits: number[] = [];
  /** Admit: the amount added. Adjust: the signed delta. */
  readonly amounts: number[] = [];
  readonly holds: number[] = [];
  readonly enforce: boolean[] = [];

  gaugeCount = 0;
  readonly gaugeKeys: string[] = [];
  readonly gaugeNames: string[] = [];
  readonly gaugeLimits: number[] = [];
  readonly gaugeEnforce: boolean[] = [];
  /**
   * Per gauge, a handle from an earlier answer, or undefined. Admit: a hint, as for windows. Adjust: the handle
   * of each gauge of `release` (same order), from the admission that took the lease.
   */
  readonly gaugeHandles: unknown[] = [];
  /** Adjust: per hold of `release` (same order), the handle of its window from the admission (a hint), or undefined. */
  readonly holdHandles: unknown[] = [];

  /** Admit: the lease taken on gauges and holds ("" for none). */
  leaseId = "";
  leaseTtlMs = 0;
  /** Admit (contract 2): record a ticket under `leaseId` (see `AdmitBatch.ticket`). */
  ticket = false;
  /**
   * Admit, with `ticket`: the engine keeps this ticket itself. Its id is fresh (the engine's own generator), it is
   * finished at most once (the engine's reservation object claims it first) and never named by id by anyone else,
   * so the store records nothing for it: the engine passes its expiry with the adjustment that finishes it
   * ({@link ticketExpiry}). The limiter's reservations on an in-process store.
   */
  ticketPrivate = false;
  /** Adjust: the lease to release in the same step. */
  release: LeaseRef | undefined = undefined;
  /** Adjust (contract 2): the ticket this adjustment finishes ("" for none; see `AdjustBatch.ticket`). */
  ticketId = "";
  ticketFinish: "settle" | "release" = "settle";
  ticketKeepMs = 0;
  /** Adjust: the store's handle of the ticket from the admission's answer (a hint, as for windows), or undefined. */
  ticketHandle: unknown = undefined;
  /**
   * Adjust: for a ticket the engine keeps ({@link ticketPrivate}), its expiry in the store's time (the lease's,
   * renewals included); NaN for a ticket the store records. The store answers it `open` before it, `unknown` after.
   */
  ticketExpiry = Number.NaN;
  /**
   * Adjust: the caller reads the result (starts, values, `applied`, `released`). When false the result is
   * unspecified, and the store may skip its clock for fixed windows passed with a handle and a guard: a delta to
   * such a window that has expired but not rolled yet is then applied to it and vanishes when it rolls, which is
   * the same outcome as the guard refusing it. Set by the engine on its own flat calls only: it is stricter than the
   * object form's `AdjustBatch.readBack` (which keeps `now`, `applied` and `released`), so `fromAdjust` leaves it
   * true.
   */
  readBack = true;

  reset(): this {
    this.windowCount = 0;
    this.counterCount = 0;
    this.gaugeCount = 0;
    this.leaseId = "";
    this.leaseTtlMs = 0;
    this.ticket = false;
    this.ticketPrivate = false;
    this.release = undefined;
    this.ticketId = "";
    this.ticketHandle = undefined;
    this.ticketExpiry = Number.NaN;
    this.readBack = true;
    return this;
  }

  /** Adjust: finishes the ticket `id` (see `AdjustBatch.ticket`); `handle` is the admission's ticket handle. */
  finishTicket(id: string, finish: "settle" | "release", keepMs: number, handle?: unknown, expiry = Number.NaN): void {
    this.ticketId = id;
    this.ticketFinish = finish;
    this.ticketKeepMs = keepMs;
    this.ticketHandle = handle;
    this.ticketExpiry = expiry;
  }

  window(
    key: string,
    windowMs: number,
    sliding: boolean,
    handle?: unknown,
    expectStart = Number.NaN,
    noHolds = false,
  ): void {
    const i = this.windowCount++;
    this.keys[i] = key;
    this.windowMs[i] = windowMs;
    this.sliding[i] = sliding;
    this.noHolds[i] = noHolds;
    this.handles[i] = handle;
    this.expectStart[i] = expectStart;
    this.counterEnd[i] = this.counterCount;
  }

  counter(name: string, limit: number, amount: number, hold: number, enforce: boolean): void {
    const c = this.counterCount++;
    this.names[c] = name;
    this.limits[c] = limit;
    this.amounts[c] = amount;
    this.holds[c] = hold;
    this.enforce[c] = enforce;
    this.counterEnd[this.windowCount - 1] = this.counterCount;
  }

  gauge(key: string, name: string, limit: number, enforce: boolean, handle?: unknown): void {
    const g = this.gaugeCount++;
    this.gaugeKeys[g] = key;
    this.gaugeNames[g] = name;
    this.gaugeLimits[g] = limit;
    this.gaugeEnforce[g] = enforce;
    this.gaugeHandles[g] = handle;
  }

  /**
   * Adjust: releases `lease` in the same step; `handles` are its gauges' handles (see {@link gaugeHandles}), from
   * index `from`, and `holdHandles` its holds' window handles (hints).
   */
  releaseLease(
    lease: LeaseRef | undefined,
    handles?: readonly unknown[],
    from = 0,
    holdHandles?: readonly unknown[],
  ): void {
    this.release = lease;
    if (lease === undefined) return;
    for (let g = 0; g < lease.gauges.length; g++) this.gaugeHandles[g] = handles?.[from + g];
    for (let h = 0; h < lease.holds.length; h++) this.holdHandles[h] = holdHandles?.[h];
  }

  /** Fills this batch from the contract's object form of an admission. */
  fromAdmit(batch: AdmitBatch): this {
    this.reset();
    for (const w of batch.windows) {
      this.window(w.key, w.windowMs, w.algorithm === "sliding", undefined, Number.NaN, w.noHolds === true);
      for (const c of w.counters) this.counter(c.name, c.limit, c.amount, c.hold ?? 0, c.enforce);
    }
    for (const g of batch.gauges) this.gauge(g.key, g.name, g.limit, g.enforce);
    if (batch.lease !== undefined) {
      this.leaseId = batch.lease.id;
      this.leaseTtlMs = batch.lease.ttlMs;
    }
    this.ticket = batch.ticket === true;
    return this;
  }

  /** Fills this batch from the contract's object form of an adjustment. */
  fromAdjust(batch: AdjustBatch): this {
    this.reset();
    for (const w of batch.windows) {
      this.window(
        w.key,
        w.windowMs,
        w.algorithm === "sliding",
        undefined,
        w.expectStart ?? Number.NaN,
        w.noHolds === true,
      );
      for (const c of w.counters) this.counter(c.name, 0, c.delta, 0, true);
    }
    this.releaseLease(batch.release);
    if (batch.ticket !== undefined) this.finishTicket(batch.ticket.id, batch.ticket.finish, batch.ticket.keepMs);
    return this;
  }
}

/** The answer to a flat call, reused from call to call; indices follow the batch. */
export class FlatResult {
  /** Admit: everything applied (true) or nothing (false). */
  admitted = false;
  now = 0;
  /** {@link FLAT_NOT_DENIED}, {@link FLAT_DENIED_COUNTER} or {@link FLAT_DENIED_GAUGE}. */
  denied = FLAT_NOT_DENIED;
  /** The window of the denying counter. */
  deniedWindow = 0;
  /** Flat index of the denying counter, or index of the denying gauge. */
  deniedIndex = 0;
  /** Per window: start after this call. */
  readonly starts: number[] = [];
  /** Per window: the store's handle (see the module comment). */
  readonly handles: unknown[] = [];
  /** Admit, per gauge: the store's handle. */
  readonly gaugeHandles: unknown[] = [];
  /** Adjust, per window: whether the deltas were applied. */
  readonly applied: boolean[] = [];
  /** Per counter (flat index): as {@link CounterState}. */
  readonly values: number[] = [];
  readonly previous: number[] = [];
  readonly held: number[] = [];
  /** Per gauge: as {@link GaugeState} (`earliestExpiry` null when none). */
  readonly inFlight: number[] = [];
  readonly earliest: Array<number | null> = [];
  /** Adjust: entries removed by the release. */
  released = 0;
  /** Adjust (contract 2): the ticket state found, when the batch finished a ticket; else undefined. */
  ticket: TicketState | undefined = undefined;
  /** Admit (contract 2): the store's handle of the ticket it recorded (opaque), for the adjustment finishing it. */
  ticketHandle: unknown = undefined;
  /** Object path: the answer's `degraded` (a failure policy decided), else undefined. */
  degraded: "open" | "fallback" | undefined = undefined;
}

/**
 * Optional capability of in-process stores: admissions and adjustments in flat form, synchronously, with the
 * semantics of `admit` and `adjust`. Batches handed to it were built by the engine from validated input; the
 * store does not validate them again.
 */
export interface FlatCounterStore {
  admitFlat(batch: FlatBatch, out: FlatResult): void;
  adjustFlat(batch: FlatBatch, out: FlatResult): void;
  /**
   * `renew`, synchronously, with the ticket's handle from the admission's answer (or undefined). A ticket the engine
   * keeps itself ({@link FlatBatch.ticketPrivate}) is passed as `kept`: while live (`now < kept.expiry`) the store
   * extends it like its own entries (`kept.expiry = now + ttlMs`) and counts it.
   */
  renewFlat(lease: LeaseRef, ttlMs: number, ticketHandle: unknown, kept: { expiry: number } | undefined): number;
  /**
   * Records a ticket the engine kept so far ({@link FlatBatch.ticketPrivate}) under its id, so that others may name
   * it from now on: open until `expiry` (store time), or already finished (kept `keepMs` from now). Answers its handle.
   */
  recordTicket(id: string, finished: boolean, expiry: number, keepMs: number): unknown;
}

/** The store's declared {@link FlatCounterStore} capability (`store.capabilities.flat`), when it has one. */
export function flatStoreOf(store: CounterStore): FlatCounterStore | undefined {
  return store.capabilities?.flat;
}

function windowStates(batch: FlatBatch, r: FlatResult): WindowState[] {
  const windows: WindowState[] = new Array(batch.windowCount);
  let c = 0;
  for (let i = 0; i < batch.windowCount; i++) {
    const end = batch.counterEnd[i]!;
    const counters: CounterState[] = new Array(end - c);
    for (let j = 0; c < end; j++, c++) {
      counters[j] = { value: r.values[c]!, previous: r.previous[c]!, held: r.held[c]! };
    }
    windows[i] = { start: r.starts[i]!, counters };
  }
  return windows;
}

/** The contract's object form of a flat admission's answer. */
export function toAdmitResult(batch: FlatBatch, r: FlatResult): AdmitResult {
  const gauges: GaugeState[] = new Array(batch.gaugeCount);
  for (let g = 0; g < batch.gaugeCount; g++) gauges[g] = { inFlight: r.inFlight[g]!, earliestExpiry: r.earliest[g]! };
  const out: AdmitResult = { admitted: r.admitted, now: r.now, windows: windowStates(batch, r), gauges };
  if (r.denied === FLAT_DENIED_COUNTER) {
    const first = r.deniedWindow === 0 ? 0 : batch.counterEnd[r.deniedWindow - 1]!;
    out.denied = { type: "counter", window: r.deniedWindow, counter: r.deniedIndex - first } satisfies DeniedAt;
  } else if (r.denied === FLAT_DENIED_GAUGE) {
    out.denied = { type: "gauge", gauge: r.deniedIndex };
  } else if (r.denied === FLAT_DENIED_TICKET) {
    out.denied = { type: "ticket" };
  }
  return out;
}

/** The contract's object form of a flat adjustment's answer. */
export function toAdjustResult(batch: FlatBatch, r: FlatResult): AdjustResult {
  const out: AdjustResult = {
    now: r.now,
    applied: r.applied.slice(0, batch.windowCount),
    windows: windowStates(batch, r),
    released: r.released,
  };
  if (batch.ticketId !== "") out.ticket = r.ticket!;
  return out;
}

/** The contract's object form of a flat admission batch. */
export function toAdmitBatch(b: FlatBatch): AdmitBatch {
  const windows: WindowOp[] = new Array(b.windowCount);
  let c = 0;
  for (let i = 0; i < b.windowCount; i++) {
    const counters: CounterOp[] = [];
    for (const end = b.counterEnd[i]!; c < end; c++) {
      const op: CounterOp = { name: b.names[c]!, limit: b.limits[c]!, amount: b.amounts[c]!, enforce: b.enforce[c]! };
      if (b.holds[c]! > 0) op.hold = b.holds[c]!;
      counters.push(op);
    }
    windows[i] = { key: b.keys[i]!, windowMs: b.windowMs[i]!, algorithm: b.sliding[i] ? "sliding" : "fixed", counters };
    if (b.noHolds[i]) windows[i]!.noHolds = true;
  }
  const gauges: GaugeOp[] = new Array(b.gaugeCount);
  for (let g = 0; g < b.gaugeCount; g++) {
    gauges[g] = { key: b.gaugeKeys[g]!, name: b.gaugeNames[g]!, limit: b.gaugeLimits[g]!, enforce: b.gaugeEnforce[g]! };
  }
  const batch: AdmitBatch = { windows, gauges };
  if (b.leaseId !== "") batch.lease = { id: b.leaseId, ttlMs: b.leaseTtlMs };
  if (b.ticket) batch.ticket = true;
  return batch;
}

/** The contract's object form of a flat adjustment batch (handles are dropped: the store looks keys up). */
export function toAdjustBatch(b: FlatBatch): AdjustBatch {
  const windows: AdjustWindowOp[] = new Array(b.windowCount);
  let c = 0;
  for (let i = 0; i < b.windowCount; i++) {
    const counters: CounterDelta[] = [];
    for (const end = b.counterEnd[i]!; c < end; c++) counters.push({ name: b.names[c]!, delta: b.amounts[c]! });
    const op: AdjustWindowOp = {
      key: b.keys[i]!,
      windowMs: b.windowMs[i]!,
      algorithm: b.sliding[i] ? "sliding" : "fixed",
      counters,
    };
    if (!Number.isNaN(b.expectStart[i]!)) op.expectStart = b.expectStart[i]!;
    if (b.noHolds[i]) op.noHolds = true;
    windows[i] = op;
  }
  const batch: AdjustBatch = b.release !== undefined ? { windows, release: b.release } : { windows };
  if (b.ticketId !== "") batch.ticket = { id: b.ticketId, finish: b.ticketFinish, keepMs: b.ticketKeepMs };
  if (!b.readBack) batch.readBack = false;
  return batch;
}

/** Fills `out` from the contract's answer to an admission of `batch` (the object path seen in flat form). */
export function fromAdmitResult(batch: FlatBatch, res: AdmitResult, out: FlatResult): FlatResult {
  out.admitted = res.admitted;
  out.now = res.now;
  out.denied = FLAT_NOT_DENIED;
  out.degraded = res.degraded;
  let c = 0;
  for (let i = 0; i < batch.windowCount; i++) {
    const w = res.windows[i];
    out.starts[i] = w === undefined ? res.now : w.start;
    out.handles[i] = undefined;
    for (let j = 0, end = batch.counterEnd[i]!; c < end; j++, c++) {
      const st = w?.counters[j];
      out.values[c] = st?.value ?? 0;
      out.previous[c] = st?.previous ?? 0;
      out.held[c] = st?.held ?? 0;
    }
  }
  for (let g = 0; g < batch.gaugeCount; g++) {
    const st = res.gauges[g];
    out.inFlight[g] = st?.inFlight ?? 0;
    out.earliest[g] = st?.earliestExpiry ?? null;
    out.gaugeHandles[g] = undefined;
  }
  out.ticketHandle = undefined;
  const at = res.denied;
  if (!res.admitted && at !== undefined) {
    if (at.type === "counter") {
      out.denied = FLAT_DENIED_COUNTER;
      out.deniedWindow = at.window;
      out.deniedIndex = (at.window === 0 ? 0 : batch.counterEnd[at.window - 1]!) + at.counter;
    } else if (at.type === "gauge") {
      out.denied = FLAT_DENIED_GAUGE;
      out.deniedIndex = at.gauge;
    } else out.denied = FLAT_DENIED_TICKET;
  }
  return out;
}

/** Fills `out` from the contract's answer to an adjustment of `batch` (states only when the store answered them). */
export function fromAdjustResult(batch: FlatBatch, res: AdjustResult, out: FlatResult): FlatResult {
  out.now = res.now;
  out.released = res.released;
  out.ticket = res.ticket;
  out.degraded = res.degraded;
  for (let i = 0; i < batch.windowCount; i++) out.applied[i] = res.applied[i] === true;
  if (res.windows.length === batch.windowCount) {
    let c = 0;
    for (let i = 0; i < batch.windowCount; i++) {
      const w = res.windows[i]!;
      out.starts[i] = w.start;
      for (let j = 0, end = batch.counterEnd[i]!; c < end; j++, c++) {
        const st = w.counters[j];
        out.values[c] = st?.value ?? 0;
        out.previous[c] = st?.previous ?? 0;
        out.held[c] = st?.held ?? 0;
      }
    }
  }
  return out;
}
