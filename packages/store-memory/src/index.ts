import {
  type AdjustBatch,
  type AdjustResult,
  type AdmitBatch,
  type AdmitResult,
  type CounterState,
  type CounterStore,
  type DeniedAt,
  type GaugeState,
  type LeaseRef,
  type ReadQuery,
  type ReadResult,
  STORE_CONTRACT_VERSION,
  TollgateError,
  validateAdjustBatch,
  validateAdmitBatch,
  validateReadQuery,
  validateRenew,
  type WindowSpec,
  type WindowState,
} from "@tollgate/core";
import { LRUCache } from "lru-cache";

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Prepended to every key, for isolating several users of one store. @default "" */
  prefix?: string;
  /**
   * Maximum number of entries (one per window, one per gauge). The least recently used entry is evicted
   * beyond it, so memory stays bounded however many distinct scopes arrive. Evicting a live window forgets
   * its counts, so size it above the number of scopes active within one window. @default 100000
   */
  maxEntries?: number;
  /** The store's clock in ms since epoch; inject one in tests. @default Date.now */
  now?: () => number;
}

interface Hold {
  amount: number;
  expiry: number;
}

interface Counter {
  value: number;
  previous: number;
  /** Holds by lease id; absent until the first hold. */
  holds: Map<string, Hold> | undefined;
}

interface WindowEntry {
  kind: "window";
  start: number;
  counters: Map<string, Counter>;
}

interface GaugeEntry {
  kind: "gauge";
  leases: Map<string, number>;
}

type Entry = WindowEntry | GaugeEntry;

/** How a window looks at `now`: kept, shifted by one period (sliding), or fresh. */
const KEEP = 0;
const SHIFT = 1;
const RESET = 2;
type Roll = typeof KEEP | typeof SHIFT | typeof RESET;

function rollOf(entry: WindowEntry | undefined, w: WindowSpec, now: number): Roll {
  if (entry === undefined) return RESET;
  const elapsed = now - entry.start;
  if (elapsed < w.windowMs) return KEEP;
  if (w.algorithm === "sliding" && elapsed < 2 * w.windowMs) return SHIFT;
  return RESET;
}

function startAfter(roll: Roll, entry: WindowEntry | undefined, w: WindowSpec, now: number): number {
  if (roll === KEEP) return entry!.start;
  if (roll === SHIFT) return entry!.start + w.windowMs;
  return now;
}

/** Sum of live holds; drops expired ones (and an emptied map) when `prune` is set. */
function heldOf(c: Counter | undefined, now: number, prune: boolean): number {
  if (c?.holds === undefined) return 0;
  let sum = 0;
  for (const [id, h] of c.holds) {
    if (h.expiry <= now) {
      if (prune) c.holds.delete(id);
    } else sum += h.amount;
  }
  if (prune && c.holds.size === 0) c.holds = undefined;
  return sum;
}

function liveLeases(g: GaugeEntry | undefined, now: number, prune: boolean): GaugeState {
  if (g === undefined) return { inFlight: 0, earliestExpiry: null };
  let inFlight = 0;
  let earliest: number | null = null;
  for (const [id, expiry] of g.leases) {
    if (expiry <= now) {
      if (prune) g.leases.delete(id);
      continue;
    }
    inFlight++;
    if (earliest === null || expiry < earliest) earliest = expiry;
  }
  return { inFlight, earliestExpiry: earliest };
}

function viewCounter(c: Counter | undefined, roll: Roll, held: number): CounterState {
  if (c === undefined || roll === RESET) return { value: 0, previous: 0, held };
  if (roll === SHIFT) return { value: 0, previous: c.value, held };
  return { value: c.value, previous: c.previous, held };
}

/** Applies a roll to a stored entry in place. */
function persistRoll(entry: WindowEntry, roll: Roll, start: number): void {
  if (roll === KEEP) return;
  entry.start = start;
  for (const c of entry.counters.values()) {
    c.previous = roll === SHIFT ? c.value : 0;
    c.value = 0;
  }
}

/**
 * The in-memory {@link CounterStore}: bounded by an LRU, atomic by construction (every method runs to
 * completion without awaiting between its reads and writes, so concurrent calls can never interleave).
 */
export class MemoryStore implements CounterStore {
  readonly contractVersion = STORE_CONTRACT_VERSION;
  readonly name = "memory";
  private readonly cache: LRUCache<string, Entry>;
  private readonly prefix: string;
  private readonly now: () => number;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new TollgateError("INVALID_ARGUMENT", `maxEntries must be a positive integer, got ${maxEntries}`);
    }
    this.cache = new LRUCache<string, Entry>({ max: maxEntries });
    this.prefix = options.prefix ?? "";
    this.now = options.now ?? Date.now;
  }

  /** Number of entries currently held (windows and gauges). */
  get size(): number {
    return this.cache.size;
  }

  async admit(batch: AdmitBatch): Promise<AdmitResult> {
    return this.admitSync(batch);
  }

  /**
   * Synchronous form of {@link admit}, for embedding without a promise per call. Pass `trusted` only for batches
   * built from validated input (the engine does): validation is then skipped.
   */
  admitSync(batch: AdmitBatch, trusted = false): AdmitResult {
    this.assertOpen();
    if (!trusted) validateAdmitBatch(batch);
    const now = this.now();
    const { windows, gauges } = batch;
    const entries: Array<WindowEntry | undefined> = new Array(windows.length);
    const rolls: Roll[] = new Array(windows.length);
    const states: WindowState[] = new Array(windows.length);
    let denied: DeniedAt | undefined;

    for (let i = 0; i < windows.length; i++) {
      const w = windows[i]!;
      const entry = this.windowEntry(w.key);
      const roll = rollOf(entry, w, now);
      const start = startAfter(roll, entry, w, now);
      entries[i] = entry;
      rolls[i] = roll;
      const counters: CounterState[] = new Array(w.counters.length);
      for (let j = 0; j < w.counters.length; j++) {
        const op = w.counters[j]!;
        const c = entry?.counters.get(op.name);
        const state = viewCounter(c, roll, heldOf(c, now, true));
        counters[j] = state;
        if (denied === undefined && op.enforce && exceeds(state, op.amount + (op.hold ?? 0), op.limit, w, start, now)) {
          denied = { type: "counter", window: i, counter: j };
        }
      }
      states[i] = { start, counters };
    }

    const gaugeEntries: Array<GaugeEntry | undefined> = new Array(gauges.length);
    const gaugeStates: GaugeState[] = new Array(gauges.length);
    for (let i = 0; i < gauges.length; i++) {
      const g = gauges[i]!;
      const entry = this.gaugeEntry(g.key, g.name);
      gaugeEntries[i] = entry;
      const state = liveLeases(entry, now, true);
      gaugeStates[i] = state;
      if (denied === undefined && g.enforce && state.inFlight + 1 > g.limit) denied = { type: "gauge", gauge: i };
    }

    if (denied !== undefined) return { admitted: false, now, denied, windows: states, gauges: gaugeStates };

    const lease = batch.lease;
    for (let i = 0; i < windows.length; i++) {
      const w = windows[i]!;
      const state = states[i]!;
      let entry = entries[i];
      if (entry === undefined) {
        entry = { kind: "window", start: state.start, counters: new Map() };
        this.cache.set(this.prefix + w.key, entry);
      } else persistRoll(entry, rolls[i]!, state.start);
      for (let j = 0; j < w.counters.length; j++) {
        const op = w.counters[j]!;
        const cs = state.counters[j]!;
        let c = entry.counters.get(op.name);
        if (c === undefined) {
          c = { value: 0, previous: 0, holds: undefined };
          entry.counters.set(op.name, c);
        }
        c.value += op.amount;
        cs.value = c.value;
        cs.previous = c.previous;
        const hold = op.hold ?? 0;
        if (hold > 0) {
          c.holds ??= new Map();
          const prior = c.holds.get(lease!.id);
          c.holds.set(lease!.id, { amount: hold, expiry: now + lease!.ttlMs });
          cs.held += hold - (prior !== undefined && prior.expiry > now ? prior.amount : 0);
        }
      }
    }
    for (let i = 0; i < gauges.length; i++) {
      const g = gauges[i]!;
      let entry = gaugeEntries[i];
      if (entry === undefined) {
        entry = { kind: "gauge", leases: new Map() };
        this.cache.set(`${this.prefix}${g.key}:${g.name}`, entry);
      }
      const expiry = now + lease!.ttlMs;
      const known = entry.leases.has(lease!.id);
      entry.leases.set(lease!.id, expiry);
      const gs = gaugeStates[i]!;
      if (!known) gs.inFlight++;
      if (gs.earliestExpiry === null || expiry < gs.earliestExpiry) gs.earliestExpiry = expiry;
    }
    return { admitted: true, now, windows: states, gauges: gaugeStates };
  }

  async adjust(batch: AdjustBatch): Promise<AdjustResult> {
    return this.adjustSync(batch);
  }

  /** Synchronous form of {@link adjust}; `trusted` as in {@link admitSync}. */
  adjustSync(batch: AdjustBatch, trusted = false): AdjustResult {
    this.assertOpen();
    if (!trusted) validateAdjustBatch(batch);
    const now = this.now();
    const applied: boolean[] = new Array(batch.windows.length);
    const entries: Array<WindowEntry | undefined> = new Array(batch.windows.length);
    for (let i = 0; i < batch.windows.length; i++) {
      const w = batch.windows[i]!;
      let entry = this.peekWindow(w.key);
      const roll = rollOf(entry, w, now);
      const ok = w.expectStart === undefined || (roll === KEEP && entry!.start === w.expectStart);
      applied[i] = ok;
      if (ok) {
        const start = startAfter(roll, entry, w, now);
        if (entry === undefined) {
          entry = { kind: "window", start, counters: new Map() };
          this.cache.set(this.prefix + w.key, entry);
        } else persistRoll(entry, roll, start);
        for (const d of w.counters) {
          let c = entry.counters.get(d.name);
          if (c === undefined) {
            c = { value: 0, previous: 0, holds: undefined };
            entry.counters.set(d.name, c);
          }
          c.value = Math.max(0, c.value + d.delta);
        }
      }
      entries[i] = entry;
    }
    const released = batch.release ? this.releaseLease(batch.release, now) : 0;
    const states: WindowState[] = new Array(batch.windows.length);
    for (let i = 0; i < batch.windows.length; i++) {
      const w = batch.windows[i]!;
      states[i] = stateOf(entries[i], w, w.counters, now);
    }
    return { now, applied, windows: states, released };
  }

  async renew(lease: LeaseRef, ttlMs: number): Promise<number> {
    this.assertOpen();
    validateRenew(lease, ttlMs);
    const now = this.now();
    const expiry = now + ttlMs;
    let renewed = 0;
    for (const g of lease.gauges) {
      const entry = this.gaugeEntry(g.key, g.name);
      const current = entry?.leases.get(lease.id);
      if (current !== undefined && current > now) {
        entry!.leases.set(lease.id, expiry);
        renewed++;
      }
    }
    for (const h of lease.holds) {
      const hold = this.windowEntry(h.key)?.counters.get(h.name)?.holds?.get(lease.id);
      if (hold !== undefined && hold.expiry > now) {
        hold.expiry = expiry;
        renewed++;
      }
    }
    return renewed;
  }

  async read(query: ReadQuery): Promise<ReadResult> {
    this.assertOpen();
    validateReadQuery(query);
    const now = this.now();
    const windows = query.windows.map((w) => stateOf(this.peekWindow(w.key), w, w.counters, now));
    const gauges = query.gauges.map((g) => liveLeases(this.peekGauge(g.key, g.name), now, false));
    return { now, windows, gauges };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cache.clear();
  }

  private releaseLease(ref: LeaseRef, now: number): number {
    let removed = 0;
    for (const g of ref.gauges) {
      const entry = this.peekGauge(g.key, g.name);
      const expiry = entry?.leases.get(ref.id);
      if (expiry !== undefined) {
        entry!.leases.delete(ref.id);
        if (expiry > now) removed++;
      }
    }
    for (const h of ref.holds) {
      const counter = this.peekWindow(h.key)?.counters.get(h.name);
      const hold = counter?.holds?.get(ref.id);
      if (hold !== undefined) {
        // the last hold takes its map with it: cheaper than deleting, and admissions skip empty holds
        if (counter!.holds!.size === 1) counter!.holds = undefined;
        else counter!.holds!.delete(ref.id);
        if (hold.expiry > now) removed++;
      }
    }
    return removed;
  }

  private windowEntry(key: string): WindowEntry | undefined {
    return asWindow(this.cache.get(this.prefix + key), key);
  }

  private peekWindow(key: string): WindowEntry | undefined {
    return asWindow(this.cache.peek(this.prefix + key), key);
  }

  private gaugeEntry(key: string, name: string): GaugeEntry | undefined {
    return asGauge(this.cache.get(`${this.prefix}${key}:${name}`), key);
  }

  private peekGauge(key: string, name: string): GaugeEntry | undefined {
    return asGauge(this.cache.peek(`${this.prefix}${key}:${name}`), key);
  }

  private assertOpen(): void {
    if (this.closed) throw new TollgateError("STORE_CLOSED", "[memory] the store is closed");
  }
}

/** A window's state at `now`, read-only (no roll or prune is persisted). */
function stateOf(
  entry: WindowEntry | undefined,
  w: WindowSpec,
  counters: ReadonlyArray<string | { name: string }>,
  now: number,
): WindowState {
  const roll = rollOf(entry, w, now);
  const start = startAfter(roll, entry, w, now);
  const states: CounterState[] = new Array(counters.length);
  for (let j = 0; j < counters.length; j++) {
    const n = counters[j]!;
    const c = entry?.counters.get(typeof n === "string" ? n : n.name);
    states[j] = viewCounter(c, roll, heldOf(c, now, false));
  }
  return { start, counters: states };
}

function asWindow(e: Entry | undefined, key: string): WindowEntry | undefined {
  if (e === undefined || e.kind === "window") return e;
  throw new TollgateError("STORE_DATA_CORRUPT", `[memory] ${key} holds a gauge, not a window`);
}

function asGauge(e: Entry | undefined, key: string): GaugeEntry | undefined {
  if (e === undefined || e.kind === "gauge") return e;
  throw new TollgateError("STORE_DATA_CORRUPT", `[memory] ${key} holds a window, not a gauge`);
}

/**
 * The contract's check: `add > 0 && used + add > limit`, or `add == 0 && used >= limit`, where a sliding
 * window's `used` weights the previous window by its overlap (compared exactly, multiplied through by W).
 */
function exceeds(s: CounterState, add: number, limit: number, w: WindowSpec, start: number, now: number): boolean {
  const current = s.value + s.held + add;
  if (w.algorithm === "fixed" || s.previous === 0) return add > 0 ? current > limit : current >= limit;
  const W = w.windowMs;
  const lhs = s.previous * (W - (now - start)) + current * W;
  return add > 0 ? lhs > limit * W : lhs >= limit * W;
}

/** Creates a bounded in-memory {@link CounterStore}. */
export function createMemoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  return new MemoryStore(options);
}
