/**
 * The CounterStore contract, version 2. See docs/store-contract.md for the full semantics.
 *
 * Vocabulary
 * - A **window** is one descriptor's time window, stored under a base key such as `{api_key:abc}`.
 *   It holds one start time (`<base>:window`) shared by every counter of the window
 *   (`<base>:requests`, `<base>:tokens`, ...). When the window rolls, all its counters roll together.
 * - A **counter** is an integer in a window. Admission checks `current + amount (+ hold) <= limit`.
 * - A **hold** is an amount attached to a counter under a lease id with a TTL: it counts against the
 *   limit until released or expired (budgets use holds for cost reservations).
 * - A **gauge** is a set of lease ids with expiry (`<base>:<name>`, e.g. `:max_parallel_requests`);
 *   its size is the number of in-flight requests.
 *
 * Every key the store writes is `prefix + base + ":" + suffix`; the prefix is the store's own option.
 * The store owns the clock (memory: an injected clock; Redis: server TIME), in milliseconds.
 */

import type { FlatCounterStore } from "./flat.js";

/**
 * Version of the contract this file describes. Stores declare the version they implement. Version 2 added tickets
 * (exactly-once settles, releases and renewals): a store written for version 1 must implement them to declare 2.
 */
export const STORE_CONTRACT_VERSION = 2 as const;

/** Window algorithm of one window. */
export type WindowAlgorithm = "fixed" | "sliding";

/** One counter inside a window, in an admission. */
export interface CounterOp {
  /** Counter name, e.g. `"requests"` or `"tokens"`: `[A-Za-z0-9_]+`. */
  name: string;
  /** Maximum allowed value (inclusive). Non-negative safe integer. */
  limit: number;
  /** Amount added to the counter when admitted. Non-negative safe integer. */
  amount: number;
  /** Amount held under the batch's lease until released or the lease TTL passes. Default 0. */
  hold?: number;
  /**
   * When false the counter is counted but never denies (shadow mode or a condition that is off);
   * the engine reports it as would-deny when it ends above its limit.
   */
  enforce: boolean;
}

/** One window (one descriptor) in an admission or adjustment. */
export interface WindowSpec {
  /** Base key, e.g. `{api_key:abc}`. The store prepends its prefix and appends suffixes. */
  key: string;
  /** Window length in milliseconds, positive safe integer. */
  windowMs: number;
  /** `fixed` (anchored at first use) or `sliding` (previous window weighted by overlap). */
  algorithm: WindowAlgorithm;
  /**
   * Contract 2: the counters of this window never carry holds, in any batch, for as long as the key lives (rate-limit
   * windows; budgets hold). A store may then skip hold data for this window: the Redis stores pass and read no hold
   * keys. Keep it the same for every batch naming the key: a window flagged here whose counters hold in another
   * batch would not see those holds. An admission with `hold > 0` in such a window is `INVALID_ARGUMENT`.
   * @default false
   */
  noHolds?: boolean;
}

export interface WindowOp extends WindowSpec {
  /** Every counter of this window. Callers must always pass the same set for one key. */
  counters: CounterOp[];
}

/** One in-flight gauge in an admission. */
export interface GaugeOp {
  /** Base key, e.g. `{api_key:abc}`. */
  key: string;
  /** Gauge name, e.g. `"max_parallel_requests"`. */
  name: string;
  /** Maximum number of live leases (inclusive). Non-negative safe integer. */
  limit: number;
  /** When false the lease is taken but never denies. */
  enforce: boolean;
}

/** A lease taken by an admission on its gauges and holds. */
export interface LeaseSpec {
  /** Unique across every process sharing the store (the engine uses `createIdGenerator`). */
  id: string;
  /** Time to live in ms; renew before it passes. Positive safe integer. */
  ttlMs: number;
}

export interface AdmitBatch {
  windows: WindowOp[];
  gauges: GaugeOp[];
  /** Required when `gauges` is non-empty, any counter has a hold, or `ticket` is true. */
  lease?: LeaseSpec;
  /**
   * Contract 2: record a **ticket** under `lease.id` when admitted: the store remembers that this admission is
   * open until a settle or release finishes it (see {@link TicketOp}) or the lease expires. The ticket lives as long
   * as the lease (`renew` extends both). When the id is already finished (a late admission arriving after its
   * compensation or settle), nothing is applied and the answer is `admitted: false` with `denied.type` `"ticket"`.
   * Requires `lease`. @default false
   */
  ticket?: boolean;
}

/** State of one counter as the store answers it. */
export interface CounterState {
  /** Committed value in the current window (after applying when admitted, before when denied). */
  value: number;
  /** Committed value of the previous window (sliding windows; 0 for fixed). */
  previous: number;
  /** Sum of live holds on this counter (after applying when admitted). */
  held: number;
}

export interface WindowState {
  /** Start of the current window, ms since epoch (after any roll this call performed). */
  start: number;
  /** States in the order of the request's `counters`. */
  counters: CounterState[];
}

export interface GaugeState {
  /** Live leases (after applying when admitted, before when denied). */
  inFlight: number;
  /** Earliest expiry among live leases, ms since epoch, or null when none. */
  earliestExpiry: number | null;
}

export type DeniedAt =
  | { type: "counter"; window: number; counter: number }
  | { type: "gauge"; gauge: number }
  /** Contract 2: the batch's ticket was already finished; nothing was applied. */
  | { type: "ticket" };

export interface AdmitResult {
  /** True when everything was applied, false when nothing was. */
  admitted: boolean;
  /** The store's clock at the time of the decision, ms since epoch. */
  now: number;
  /** The first enforced counter or gauge that would exceed its limit (denials only). */
  denied?: DeniedAt;
  windows: WindowState[];
  gauges: GaugeState[];
  /**
   * Set by a store wrapper when the real backend could not answer and a failure policy decided:
   * `"open"` admitted without counting, `"fallback"` decided on a local in-memory store.
   */
  degraded?: "open" | "fallback";
}

/** One counter delta inside an adjustment. */
export interface CounterDelta {
  name: string;
  /** Signed safe integer. The counter never goes below zero. */
  delta: number;
}

export interface AdjustWindowOp extends WindowSpec {
  /**
   * Window guard: apply only if the window still starts at this time; otherwise do nothing for
   * this window. When omitted, apply to the current window, starting a fresh one if it expired.
   */
  expectStart?: number;
  /** Every counter of this window (deltas of 0 for those not changed), as in admissions. */
  counters: CounterDelta[];
}

/** Where a lease lives, so it can be released or renewed. */
export interface LeaseRef {
  id: string;
  /** Gauges that hold the lease id. */
  gauges: Array<{ key: string; name: string }>;
  /** Counters that hold an amount under the lease id. */
  holds: Array<{ key: string; name: string }>;
  /**
   * Contract 2: base keys of the admission's windows, when it recorded a ticket. Stores that split batches (Redis
   * Cluster) keep one ticket per slot group and find them through these keys, the gauges and the holds: an
   * adjustment with a `ticket` passes its `release` with them (gauges and holds may be empty), and so does `renew`.
   */
  windows?: string[];
}

/**
 * Contract 2: makes an adjustment **exactly once** per ticket, whatever the number of retries and from whichever
 * process. The store looks up the ticket recorded by the admission (`AdmitBatch.ticket`) under `id` and:
 * - `finish: "settle"` (the request happened): applies the whole batch unless the ticket is already finished; an
 *   open ticket and an unknown one (expired with its lease, or never recorded) are both applied;
 * - `finish: "release"` (undo the admission: the request never happened, or a timed-out admission is compensated):
 *   applies the whole batch only while the ticket is open, since only then are the admission's effects known to
 *   be there; an unknown ticket applies nothing;
 * then marks the ticket finished for `keepMs` (a later admission under the same id is refused, a later adjustment
 * naming it applies nothing). Stores that split a batch (Redis Cluster slot groups) keep one ticket per group, so
 * each group is applied exactly once on its own. The answer's `ticket` says what the store found.
 */
export interface TicketOp {
  /** The ticket id: the admission's `lease.id`. */
  id: string;
  finish: "settle" | "release";
  /** How long the finished mark is kept, ms (positive safe integer); retries inside it are recognised. */
  keepMs: number;
}

/** Contract 2: the ticket state an adjustment found (before applying). */
export type TicketState = "open" | "unknown" | "finished";

export interface AdjustBatch {
  windows: AdjustWindowOp[];
  /**
   * Contract 2: apply this adjustment exactly once for the ticket (see {@link TicketOp}). Pass `release` with it,
   * naming the admission's lease entries and windows (`release.id` is then the ticket id).
   */
  ticket?: TicketOp;
  /** Release this lease (idempotent) in the same atomic step. */
  release?: LeaseRef;
  /**
   * Whether the caller reads the states after the call (`windows` of the answer). With `false` a store may answer
   * `windows: []` and skip reading them; `now`, `applied` and `released` are answered either way. The engine's
   * settles and releases pass `false`: they read nothing back. @default true
   */
  readBack?: boolean;
}

export interface AdjustResult {
  now: number;
  /** Per window: whether the deltas were applied (false when the guard did not match). */
  applied: boolean[];
  /** Values after the whole call (deltas and release), per window and counter; may be empty with `readBack: false`. */
  windows: WindowState[];
  /** Number of gauge entries and holds removed by the release (0 when already released). */
  released: number;
  /**
   * Contract 2, with `AdjustBatch.ticket`: what the store found. `"finished"` means nothing was applied (every
   * `applied[i]` false, `released` 0); `"unknown"` with `finish: "release"` likewise.
   */
  ticket?: TicketState;
  /** See {@link AdmitResult.degraded}. */
  degraded?: "open" | "fallback";
}

export interface ReadQuery {
  windows: Array<WindowSpec & { counters: string[] }>;
  gauges: Array<{ key: string; name: string }>;
}

export interface ReadResult {
  now: number;
  /** Expired or absent windows read as zero with `start` = now. */
  windows: WindowState[];
  gauges: GaugeState[];
}

/**
 * Optional capabilities a store declares (nothing is detected from the store's shape). A store without them is
 * exactly as correct: the engines then use the contract's methods.
 */
export interface StoreCapabilities {
  /**
   * The in-process flat forms of `admit` and `adjust` (see `FlatCounterStore` in flat.ts): synchronous, no promise,
   * reusable batches. Only stores whose data lives in the caller's process offer it (the memory store does).
   */
  readonly flat?: FlatCounterStore;
}

/**
 * The storage contract every Tollgate store implements. All methods are async and batch-first.
 * `admit` and `adjust` are atomic: either every effect of the call is applied, or none.
 */
export interface CounterStore {
  /** Contract version implemented; must equal {@link STORE_CONTRACT_VERSION}. */
  readonly contractVersion: typeof STORE_CONTRACT_VERSION;
  /** Short store name used in errors and events, e.g. `"memory"`, `"redis"`. */
  readonly name: string;
  /** Optional capabilities (see {@link StoreCapabilities}). @default none */
  readonly capabilities?: StoreCapabilities;
  /** All-or-nothing admission over windows, counters, holds and gauges. */
  admit(batch: AdmitBatch): Promise<AdmitResult>;
  /** Window-guarded deltas and an optional lease release, atomically. */
  adjust(batch: AdjustBatch): Promise<AdjustResult>;
  /**
   * Extend a lease's expiry to now + ttlMs. Returns how many entries were renewed (0 = lease gone). Contract 2: an
   * open ticket under the lease id is extended too (and counts as one entry).
   */
  renew(lease: LeaseRef, ttlMs: number): Promise<number>;
  /** Read without changing anything. */
  read(query: ReadQuery): Promise<ReadResult>;
  /** Release resources the store owns. Idempotent. */
  close(): Promise<void>;
}
