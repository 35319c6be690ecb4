import {
  type AdjustBatch,
  type AdjustResult,
  type AdmitBatch,
  type AdmitResult,
  type CounterState,
  type CounterStore,
  type GaugeState,
  type LeaseRef,
  type ReadQuery,
  type ReadResult,
  STORE_CONTRACT_VERSION,
  type StoreCapabilities,
  TollgateError,
  validateAdjustBatch,
  validateAdmitBatch,
  validateReadQuery,
  validateRenew,
  type WindowState,
} from "@tollgate/core";
import {
  FLAT_DENIED_COUNTER,
  FLAT_DENIED_GAUGE,
  FLAT_DENIED_TICKET,
  FLAT_NOT_DENIED,
  FlatBatch,
  type FlatCounterStore,
  FlatResult,
  toAdjustResult,
  toAdmitResult,
} from "@tollgate/core/internal";
import { LRUCache } from "lru-cache";
import { TicketTable } from "./tickets.js";

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Prepended to every key, for isolating several users of one store. @default "" */
  prefix?: string;
  /**
   * Maximum number of entries (one per window, one per gauge). The least recently used entry is evicted
   * beyond it, so memory stays bounded however many distinct scopes arrive. Evicting a live window forgets
   * its counts. Recency of entries the engine reaches through handles is refreshed at most once every
   * maxEntries / 2 operations, so size it above twice the number of scopes active within one window.
   * @default 100000
   */
  maxEntries?: number;
  /** The store's clock in ms since epoch; inject one in tests. @default Date.now */
  now?: () => number;
  /**
   * Most finished tickets remembered (contract 2). A finished ticket is kept for the `keepMs` its settle or release
   * asked, or until this many newer ones finished; a retry naming a forgotten ticket is taken as unknown (a settle
   * applies, a release does not). Open tickets are never dropped before their lease expires. About 100 bytes each.
   * @default 10000
   */
  maxTickets?: number;
}

interface Hold {
  /** The lease id (the key it is held under), so the map can be walked by its values. */
  id: string;
  amount: number;
  expiry: number;
}

interface Counter {
  readonly name: string;
  value: number;
  previous: number;
  /**
   * Holds by lease id: the first one inline (`holdId` undefined when the slot is free), further ones in `moreHolds`
   * (created on the first concurrent hold). A counter usually has zero or one hold at a time: the inline slot then
   * costs no Map, no entry object and no hashing (a Map emptied by a delete also shrinks, a runtime call).
   */
  holdId: string | undefined;
  holdAmount: number;
  holdExpiry: number;
  moreHolds: Map<string, Hold> | undefined;
  /**
   * Holds kept (inline and in `moreHolds`, live or not yet pruned). A small integer read in place: a counter without
   * holds (every rate-limit window) answers without reading a boxed number or the map.
   */
  holdCount: number;
  /**
   * Sum of the holds kept (live or expired but not yet pruned), and a lower bound of their expiries: while
   * `now < holdFloor` every hold kept is live and `heldSum` is their sum, with no walk (see {@link heldOf}).
   */
  heldSum: number;
  holdFloor: number;
  /** The window's next counter. */
  next: Counter | undefined;
}

/**
 * A window is its own first counter, and its further counters hang off it in a list: a window has one or two
 * counters in practice, and the admission then reads them without going through an array or a Map.
 */
interface WindowEntry extends Counter {
  kind: "window";
  /** The window's base key (without the store prefix). */
  readonly key: string;
  start: number;
  /** The store's LRU operation count when this entry was last moved to the most-recent end. */
  touched: number;
  /** Set when the LRU drops the entry: a handle to it is then no longer the key's window. */
  dead: boolean;
}

interface GaugeEntry {
  kind: "gauge";
  /** The gauge's base key and name (its LRU key is prefix + base + ":" + name). */
  readonly base: string;
  readonly name: string;
  touched: number;
  dead: boolean;
  /**
   * The first lease inline (`leaseId` undefined when the slot is free): a gauge usually has zero or one request in
   * flight, which then costs no Map operation. Further leases go to `leases`.
   */
  leaseId: string | undefined;
  leaseExpiry: number;
  /** Further leases: id -> expiry (ms), in expiry order while `ordered` (see {@link setLease}). */
  leases: Map<string, number>;
  /** `leases.size`, kept in place: a gauge whose map is empty is answered without reading the map. */
  more: number;
  /** Every lease set since the map was last empty expires no earlier than the ones set before it. */
  ordered: boolean;
  /** The latest expiry set since the map was last empty. */
  latest: number;
}

type Entry = WindowEntry | GaugeEntry;

/** How a window looks at `now`: kept, shifted by one period (sliding), or fresh. */
const KEEP = 0;
const SHIFT = 1;
const RESET = 2;
type Roll = typeof KEEP | typeof SHIFT | typeof RESET;

function rollOf(entry: WindowEntry | undefined, windowMs: number, sliding: boolean, now: number): Roll {
  if (entry === undefined) return RESET;
  const elapsed = now - entry.start;
  if (elapsed < windowMs) return KEEP;
  if (sliding && elapsed < 2 * windowMs) return SHIFT;
  return RESET;
}

function startAfter(roll: Roll, entry: WindowEntry | undefined, windowMs: number, now: number): number {
  if (roll === KEEP) return entry!.start;
  if (roll === SHIFT) return entry!.start + windowMs;
  return now;
}

function newWindow(key: string, start: number, name: string, touched: number): WindowEntry {
  // the fields every admission reads first, so they share the object's first cache lines; the hold details last
  return {
    kind: "window",
    dead: false,
    key,
    start,
    name,
    value: 0,
    previous: 0,
    next: undefined,
    holdCount: 0,
    touched,
    holdId: undefined,
    holdAmount: 0,
    holdExpiry: 0,
    moreHolds: undefined,
    heldSum: 0,
    holdFloor: Number.POSITIVE_INFINITY,
  };
}

/** The window's counter named `name`. */
function findCounter(entry: WindowEntry, name: string): Counter | undefined {
  for (let c: Counter | undefined = entry; c !== undefined; c = c.next) if (c.name === name) return c;
  return undefined;
}

/** Appends a counter named `name` (absent so far) to the window. */
function addCounter(entry: WindowEntry, name: string): Counter {
  let tail: Counter = entry;
  while (tail.next !== undefined) tail = tail.next;
  const c: Counter = {
    name,
    value: 0,
    previous: 0,
    next: undefined,
    holdCount: 0,
    holdId: undefined,
    holdAmount: 0,
    holdExpiry: 0,
    moreHolds: undefined,
    heldSum: 0,
    holdFloor: Number.POSITIVE_INFINITY,
  };
  tail.next = c;
  return c;
}

/**
 * Sum of live holds. While the clock is before the counter's `holdFloor` every hold is live and the kept sum is the
 * answer; otherwise the holds are walked (dropping expired ones when `prune` is set, which also makes the floor exact
 * again). A released hold leaves the floor where it was (still a lower bound), so a walk happens about once per
 * lease TTL, not once per admission.
 */
function heldOf(c: Counter | undefined, now: number, prune: boolean): number {
  if (c === undefined || c.holdCount === 0) return 0;
  if (now < c.holdFloor) return c.heldSum;
  let sum = 0;
  let floor = Number.POSITIVE_INFINITY;
  if (c.holdId !== undefined) {
    if (c.holdExpiry > now) {
      sum += c.holdAmount;
      floor = c.holdExpiry;
    } else if (prune) {
      c.holdId = undefined;
      c.holdCount--;
    }
  }
  const more = c.moreHolds;
  if (more !== undefined && more.size > 0) {
    for (const h of more.values()) {
      if (h.expiry <= now) {
        if (prune) {
          more.delete(h.id); // deleting the current entry while iterating is allowed for a Map
          c.holdCount--;
        }
      } else {
        sum += h.amount;
        if (h.expiry < floor) floor = h.expiry;
      }
    }
  }
  if (prune) {
    c.heldSum = sum;
    c.holdFloor = floor;
  }
  return sum;
}

/** Sets the hold of lease `id` on `c` (new or replacing its own); answers the amount it held before (0 if none). */
function setHold(c: Counter, id: string, amount: number, expiry: number): number {
  let prior = 0;
  if (c.holdId === id) {
    prior = c.holdAmount;
    c.holdAmount = amount;
    c.holdExpiry = expiry;
  } else {
    const h = c.moreHolds?.get(id);
    if (h !== undefined) {
      prior = h.amount;
      h.amount = amount;
      h.expiry = expiry;
    } else if (c.holdId === undefined) {
      c.holdId = id;
      c.holdAmount = amount;
      c.holdExpiry = expiry;
      c.holdCount++;
    } else {
      c.moreHolds ??= new Map();
      c.moreHolds.set(id, { id, amount, expiry });
      c.holdCount++;
    }
  }
  c.heldSum += amount - prior;
  if (expiry < c.holdFloor) c.holdFloor = expiry;
  return prior;
}

/** The expiry of lease `id`'s hold on `c`, or undefined when it holds nothing there. */
function holdExpiryOf(c: Counter | undefined, id: string): number | undefined {
  if (c === undefined || c.holdCount === 0) return undefined;
  if (c.holdId === id) return c.holdExpiry;
  return c.moreHolds?.get(id)?.expiry;
}

/** Moves the expiry of lease `id`'s hold (present) to `expiry`. */
function renewHold(c: Counter, id: string, expiry: number): void {
  if (c.holdId === id) c.holdExpiry = expiry;
  else c.moreHolds!.get(id)!.expiry = expiry;
  if (expiry < c.holdFloor) c.holdFloor = expiry;
}

/** Drops lease `id`'s hold from `c`; answers its expiry, or undefined when it held nothing there. */
function dropHold(c: Counter | undefined, id: string): number | undefined {
  if (c === undefined || c.holdCount === 0) return undefined;
  if (c.holdId === id) {
    c.holdId = undefined;
    c.holdCount--;
    c.heldSum -= c.holdAmount;
    return c.holdExpiry;
  }
  const more = c.moreHolds;
  if (more === undefined || more.size === 0) return undefined;
  const h = more.get(id);
  if (h === undefined) return undefined;
  // the map stays (empty) for the counter's next concurrent hold
  more.delete(id);
  c.holdCount--;
  c.heldSum -= h.amount;
  return h.expiry;
}

/**
 * Takes or renews a lease: the inline slot when it is free (or already this lease's), else the map, re-inserted at
 * its end, so the map stays in expiry order as long as expiries only grow (one lease TTL and a clock that does not go
 * back, the usual case). Answers whether the lease is new.
 */
function setLease(g: GaugeEntry, id: string, expiry: number): boolean {
  if (g.leaseId === id) {
    g.leaseExpiry = expiry;
    return false;
  }
  const leases = g.leases;
  const renewed = g.more > 0 && leases.delete(id);
  if (!renewed && g.leaseId === undefined) {
    g.leaseId = id;
    g.leaseExpiry = expiry;
    return true;
  }
  if (leases.size === 0) {
    g.ordered = true;
    g.latest = expiry;
  } else if (expiry < g.latest) g.ordered = false;
  else g.latest = expiry;
  leases.set(id, expiry);
  g.more = leases.size;
  return !renewed;
}

/** The expiry of lease `id` on the gauge, or undefined when the gauge does not hold it. */
function leaseExpiryOf(g: GaugeEntry, id: string): number | undefined {
  if (g.leaseId === id) return g.leaseExpiry;
  return g.more > 0 ? g.leases.get(id) : undefined;
}

/** Drops lease `id` from the gauge; answers its expiry, or undefined when the gauge did not hold it. */
function dropLease(g: GaugeEntry, id: string): number | undefined {
  if (g.leaseId === id) {
    g.leaseId = undefined;
    return g.leaseExpiry;
  }
  if (g.more === 0) return undefined;
  const leases = g.leases;
  const expiry = leases.get(id);
  if (expiry !== undefined) {
    leases.delete(id);
    g.more = leases.size;
  }
  return expiry;
}

/** The earliest expiry found by the last {@link countLeases} (null for none): its second answer, without an object. */
let earliestFound: number | null = null;

/**
 * Live leases of a gauge, dropping expired ones when `prune`; the earliest expiry among them is left in
 * {@link earliestFound}. While the map is in expiry order only the expired leases at its front and the first live one
 * are visited; otherwise (leases of different TTLs, a clock set back) every lease is, until the map is empty again.
 */
function countLeases(g: GaugeEntry | undefined, now: number, prune: boolean): number {
  let inFlight = 0;
  let earliest: number | null = null;
  if (g !== undefined) {
    if (g.leaseId !== undefined) {
      if (g.leaseExpiry > now) {
        inFlight = 1;
        earliest = g.leaseExpiry;
      } else if (prune) g.leaseId = undefined;
    }
    if (g.more > 0) {
      inFlight += g.ordered ? countOrdered(g, now, prune) : countScanned(g, now, prune);
      const e = earliestFound;
      if (e !== null && (earliest === null || e < earliest)) earliest = e;
    }
  }
  earliestFound = earliest;
  return inFlight;
}

function countOrdered(g: GaugeEntry, now: number, prune: boolean): number {
  let expired = 0;
  let earliest: number | null = null;
  for (const [id, expiry] of g.leases) {
    if (expiry > now) {
      earliest = expiry;
      break;
    }
    if (prune) g.leases.delete(id);
    else expired++;
  }
  earliestFound = earliest;
  g.more = g.leases.size;
  return g.more - expired;
}

function countScanned(g: GaugeEntry, now: number, prune: boolean): number {
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
  g.more = g.leases.size;
  if (g.more === 0) g.ordered = true;
  earliestFound = earliest;
  return inFlight;
}

/** {@link countLeases} as the contract's {@link GaugeState}. */
function liveLeases(g: GaugeEntry | undefined, now: number, prune: boolean): GaugeState {
  const inFlight = countLeases(g, now, prune);
  return { inFlight, earliestExpiry: earliestFound };
}

/** Applies a roll to a stored entry in place. */
function persistRoll(entry: WindowEntry, roll: Roll, start: number): void {
  if (roll === KEEP) return;
  entry.start = start;
  for (let c: Counter | undefined = entry; c !== undefined; c = c.next) {
    c.previous = roll === SHIFT ? c.value : 0;
    c.value = 0;
  }
}

/**
 * The in-memory {@link CounterStore}: bounded by an LRU, atomic by construction (every method runs to
 * completion without awaiting between its reads and writes, so concurrent calls can never interleave).
 *
 * Besides the contract's methods it offers the in-process fast path ({@link FlatCounterStore}, used by the
 * engines), declared as `capabilities.flat`. The contract's object forms are translated to the flat one: one
 * algorithm for every form.
 */
export class MemoryStore implements CounterStore, FlatCounterStore {
  readonly contractVersion = STORE_CONTRACT_VERSION;
  readonly name = "memory";
  /** Declares the in-process flat forms ({@link admitFlat}, {@link adjustFlat}). */
  readonly capabilities: StoreCapabilities = { flat: this };
  private readonly cache: LRUCache<string, Entry>;
  private readonly tickets: TicketTable;
  /**
   * LRU operations so far (each moves one entry to the most-recent end), and how many may pass before a window
   * reached through a handle is moved again (see {@link byHandle}).
   */
  private ops = 0;
  private readonly refreshAfter: number;
  private readonly prefix: string;
  private readonly now: () => number;
  private closed = false;
  /** Scratch of one call (calls never interleave): counters found by the check pass, rolls, gauge entries. */
  private readonly found: Array<Counter | undefined> = [];
  private readonly rolls: Roll[] = [];
  private readonly gauges: Array<GaugeEntry | undefined> = [];
  /** Scratch for translating the object forms. */
  private readonly batch = new FlatBatch();
  private readonly result = new FlatResult();

  constructor(options: MemoryStoreOptions = {}) {
    const maxEntries = options.maxEntries ?? 100_000;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new TollgateError("INVALID_ARGUMENT", `maxEntries must be a positive integer, got ${maxEntries}`);
    }
    this.cache = new LRUCache<string, Entry>({
      max: maxEntries,
      dispose: (entry) => {
        entry.dead = true;
      },
    });
    this.refreshAfter = Math.max(1, Math.floor(maxEntries / 2));
    const maxTickets = options.maxTickets ?? 10_000;
    if (!Number.isSafeInteger(maxTickets) || maxTickets < 1) {
      throw new TollgateError("INVALID_ARGUMENT", `maxTickets must be a positive integer, got ${maxTickets}`);
    }
    this.tickets = new TicketTable(maxTickets);
    this.prefix = options.prefix ?? "";
    this.now = options.now ?? Date.now;
  }

  /** Number of entries currently held (windows and gauges; tickets are counted by {@link ticketCount}). */
  get size(): number {
    return this.cache.size;
  }

  /** Number of tickets currently held, open and finished (expired ones are dropped as new ones arrive). */
  get ticketCount(): number {
    return this.tickets.size;
  }

  async admit(batch: AdmitBatch): Promise<AdmitResult> {
    this.assertOpen();
    validateAdmitBatch(batch);
    this.admitFlat(this.batch.fromAdmit(batch), this.result);
    return toAdmitResult(this.batch, this.result);
  }

  async adjust(batch: AdjustBatch): Promise<AdjustResult> {
    this.assertOpen();
    validateAdjustBatch(batch);
    this.adjustFlat(this.batch.fromAdjust(batch), this.result);
    return toAdjustResult(this.batch, this.result);
  }

  /** The admission in flat form ({@link FlatCounterStore}); the batch is trusted. */
  admitFlat(b: FlatBatch, r: FlatResult): void {
    this.assertOpen();
    const now = this.now();
    const found = this.found;
    const rolls = this.rolls;
    const entries = r.handles as Array<WindowEntry | undefined>;
    r.now = now;
    r.denied = FLAT_NOT_DENIED;

    // check pass: read everything, decide, write nothing (but expired holds and leases, which count for nothing)
    let c = 0;
    for (let i = 0; i < b.windowCount; i++) {
      const windowMs = b.windowMs[i]!;
      const sliding = b.sliding[i]!;
      const hint = liveWindow(b.handles[i], b.keys[i]!);
      const entry = hint !== undefined ? this.byHandle(hint) : this.windowEntry(b.keys[i]!);
      const roll = rollOf(entry, windowMs, sliding, now);
      const start = startAfter(roll, entry, windowMs, now);
      entries[i] = entry;
      rolls[i] = roll;
      r.starts[i] = start;
      for (const end = b.counterEnd[i]!; c < end; c++) {
        const counter = entry === undefined ? undefined : findCounter(entry, b.names[c]!);
        found[c] = counter;
        const held = heldOf(counter, now, true);
        const value = valueAt(counter, roll);
        const previous = previousAt(counter, roll);
        r.values[c] = value;
        r.previous[c] = previous;
        r.held[c] = held;
        if (
          r.denied === FLAT_NOT_DENIED &&
          b.enforce[c] &&
          exceeds(value, previous, held, b.amounts[c]! + b.holds[c]!, b.limits[c]!, windowMs, sliding, start, now)
        ) {
          r.denied = FLAT_DENIED_COUNTER;
          r.deniedWindow = i;
          r.deniedIndex = c;
        }
      }
    }
    for (let g = 0; g < b.gaugeCount; g++) {
      const hint = liveGauge(b.gaugeHandles[g], b.gaugeKeys[g]!, b.gaugeNames[g]!);
      const entry = hint !== undefined ? this.byHandle(hint) : this.gaugeEntry(b.gaugeKeys[g]!, b.gaugeNames[g]!);
      this.gauges[g] = entry;
      const inFlight = countLeases(entry, now, true);
      r.inFlight[g] = inFlight;
      r.earliest[g] = earliestFound;
      if (r.denied === FLAT_NOT_DENIED && b.gaugeEnforce[g] && inFlight + 1 > b.gaugeLimits[g]!) {
        r.denied = FLAT_DENIED_GAUGE;
        r.deniedIndex = g;
      }
    }
    // a ticket the engine keeps (FlatBatch.ticketPrivate) has a fresh id: nothing to check or record
    const indexed = b.ticket && !b.ticketPrivate;
    const ticketKey = indexed ? this.prefix + b.leaseId : "";
    const ticket = indexed ? this.tickets.entry(ticketKey) : undefined;
    if (TicketTable.isFinished(ticket, now)) {
      r.denied = FLAT_DENIED_TICKET; // a late admission under a finished ticket: whatever else it would do
    }
    if (r.denied !== FLAT_NOT_DENIED) {
      r.admitted = false;
      r.ticketHandle = undefined;
      return;
    }

    // apply pass
    const leaseId = b.leaseId;
    const expiry = now + b.leaseTtlMs;
    // a ticket the engine keeps (ticketPrivate) is not recorded here
    r.ticketHandle = indexed ? this.tickets.open(ticketKey, leaseId, ticket, now, expiry) : undefined;
    c = 0;
    for (let i = 0; i < b.windowCount; i++) {
      const start = r.starts[i]!;
      let entry = entries[i];
      if (entry === undefined) {
        entry = newWindow(b.keys[i]!, start, b.names[c]!, ++this.ops);
        found[c] = entry;
        this.cache.set(this.prefix + b.keys[i]!, entry);
        entries[i] = entry;
      } else persistRoll(entry, rolls[i]!, start);
      for (const end = b.counterEnd[i]!; c < end; c++) {
        const counter = found[c] ?? addCounter(entry, b.names[c]!);
        counter.value += b.amounts[c]!;
        r.values[c] = counter.value;
        r.previous[c] = counter.previous;
        const hold = b.holds[c]!;
        if (hold > 0) {
          // the check pass pruned expired holds, so a prior hold of this lease is live
          const prior = setHold(counter, leaseId, hold, expiry);
          r.held[c]! += hold - prior;
        }
      }
    }
    for (let g = 0; g < b.gaugeCount; g++) {
      let entry = this.gauges[g];
      if (entry === undefined) {
        const base = b.gaugeKeys[g]!;
        const name = b.gaugeNames[g]!;
        entry = {
          kind: "gauge",
          base,
          name,
          touched: ++this.ops,
          dead: false,
          leaseId: undefined,
          leaseExpiry: 0,
          leases: new Map(),
          more: 0,
          ordered: true,
          latest: 0,
        };
        this.cache.set(`${this.prefix}${base}:${name}`, entry);
      }
      r.gaugeHandles[g] = entry;
      if (setLease(entry, leaseId, expiry)) {
        r.inFlight[g]!++;
        const earliest = r.earliest[g]!;
        if (earliest === null || expiry < earliest) r.earliest[g] = expiry;
      } else {
        // the batch's own lease, taken again: its old expiry may have been the earliest
        countLeases(entry, now, false);
        r.earliest[g] = earliestFound;
      }
    }
    r.admitted = true;
  }

  /** The adjustment in flat form ({@link FlatCounterStore}); the batch is trusted. */
  adjustFlat(b: FlatBatch, r: FlatResult): void {
    this.assertOpen();
    const hasTicket = b.ticketId !== "";
    // A ticket the engine keeps (FlatBatch.ticketPrivate) comes with its expiry: open before it, unknown after. Its
    // settle needs no clock (open and unknown both apply); the engine never finishes it twice.
    const engineKept = hasTicket && !Number.isNaN(b.ticketExpiry);
    const settleKept = engineKept && b.ticketFinish === "settle";
    const now = b.readBack || (hasTicket && !settleKept) || !clockFree(b) ? this.now() : Number.NaN;
    r.now = now;
    // contract 2: a ticket decides whether anything applies (exactly once per ticket)
    let apply = true;
    r.ticket = undefined;
    if (engineKept) {
      const open = settleKept || now < b.ticketExpiry;
      r.ticket = open ? "open" : "unknown";
      apply = open || b.ticketFinish === "settle";
    } else if (hasTicket) {
      const key = this.prefix + b.ticketId;
      const found = this.tickets.find(key, b.ticketId, b.ticketHandle, now);
      const state = TicketTable.stateOf(found);
      apply = b.ticketFinish === "settle" ? state !== "finished" : state === "open";
      this.tickets.finish(key, b.ticketId, found, now, now + b.ticketKeepMs);
      r.ticket = state;
    }
    const entries = r.handles as Array<WindowEntry | undefined>;
    let c = 0;
    for (let i = 0; i < b.windowCount; i++) {
      const windowMs = b.windowMs[i]!;
      const expect = b.expectStart[i]!;
      const guarded = !Number.isNaN(expect);
      // With a guard, the handle is the window charged, live or not (a dropped one takes the delta harmlessly).
      // Without one the delta goes to whatever window the key holds now: a handle is then only a hint.
      let entry = guarded
        ? ((b.handles[i] as WindowEntry | undefined) ?? this.peekWindow(b.keys[i]!))
        : (liveWindow(b.handles[i], b.keys[i]!) ?? this.peekWindow(b.keys[i]!));
      // without a clock (see clockFree) the window is taken as not rolled: `expect` still matches its start
      const roll = Number.isNaN(now) ? KEEP : rollOf(entry, windowMs, b.sliding[i]!, now);
      const ok = apply && (!guarded || (roll === KEEP && entry!.start === expect));
      r.applied[i] = ok;
      const end = b.counterEnd[i]!;
      if (ok) {
        const start = startAfter(roll, entry, windowMs, now);
        if (entry === undefined) {
          entry = newWindow(b.keys[i]!, start, b.names[c]!, ++this.ops);
          this.cache.set(this.prefix + b.keys[i]!, entry);
        } else persistRoll(entry, roll, start);
        for (; c < end; c++) {
          const counter = findCounter(entry, b.names[c]!) ?? addCounter(entry, b.names[c]!);
          counter.value = Math.max(0, counter.value + b.amounts[c]!);
        }
      }
      c = end;
      entries[i] = entry;
    }
    r.released = apply && b.release ? this.releaseLease(b.release, now, b.gaugeHandles, b.holdHandles) : 0;
    if (!b.readBack) return;
    // values after the whole call
    c = 0;
    for (let i = 0; i < b.windowCount; i++) {
      const entry = entries[i];
      const windowMs = b.windowMs[i]!;
      const roll = rollOf(entry, windowMs, b.sliding[i]!, now);
      r.starts[i] = startAfter(roll, entry, windowMs, now);
      for (const end = b.counterEnd[i]!; c < end; c++) {
        const counter = entry === undefined ? undefined : findCounter(entry, b.names[c]!);
        viewInto(r, c, counter, roll, heldOf(counter, now, false));
      }
    }
  }

  async renew(lease: LeaseRef, ttlMs: number): Promise<number> {
    this.assertOpen();
    validateRenew(lease, ttlMs);
    return this.renewFlat(lease, ttlMs, undefined, undefined);
  }

  /** The renewal in flat form ({@link FlatCounterStore}): `ticketHandle` from the admission's answer, if any. */
  renewFlat(lease: LeaseRef, ttlMs: number, ticketHandle: unknown, kept: { expiry: number } | undefined): number {
    this.assertOpen();
    const now = this.now();
    const expiry = now + ttlMs;
    let renewed = 0;
    for (const g of lease.gauges) {
      const entry = this.gaugeEntry(g.key, g.name);
      const current = entry === undefined ? undefined : leaseExpiryOf(entry, lease.id);
      if (current !== undefined && current > now) {
        setLease(entry!, lease.id, expiry);
        renewed++;
      }
    }
    for (const h of lease.holds) {
      const entry = this.windowEntry(h.key);
      const counter = entry === undefined ? undefined : findCounter(entry, h.name);
      const held = holdExpiryOf(counter, lease.id);
      if (held !== undefined && held > now) {
        renewHold(counter!, lease.id, expiry);
        renewed++;
      }
    }
    if (kept !== undefined) {
      if (now < kept.expiry) {
        kept.expiry = expiry; // a ticket its engine keeps: extended as the store's own entries
        renewed++;
      }
    } else if (this.tickets.renew(this.prefix + lease.id, lease.id, ticketHandle, now, expiry)) renewed++;
    return renewed;
  }

  /** Records a ticket its engine kept so far ({@link FlatCounterStore.recordTicket}); answers its handle. */
  recordTicket(id: string, finished: boolean, expiry: number, keepMs: number): unknown {
    this.assertOpen();
    const now = this.now();
    return this.tickets.record(this.prefix + id, id, finished, now, finished ? now + keepMs : expiry);
  }

  async read(query: ReadQuery): Promise<ReadResult> {
    this.assertOpen();
    validateReadQuery(query);
    const now = this.now();
    const windows = query.windows.map((w): WindowState => {
      const entry = this.peekWindow(w.key);
      const roll = rollOf(entry, w.windowMs, w.algorithm === "sliding", now);
      const counters = w.counters.map((name): CounterState => {
        const counter = entry === undefined ? undefined : findCounter(entry, name);
        return {
          value: valueAt(counter, roll),
          previous: previousAt(counter, roll),
          held: heldOf(counter, now, false),
        };
      });
      return { start: startAfter(roll, entry, w.windowMs, now), counters };
    });
    const gauges = query.gauges.map((g) => liveLeases(this.peekGauge(g.key, g.name), now, false));
    return { now, windows, gauges };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cache.clear();
    this.tickets.clear();
  }

  private releaseLease(
    ref: LeaseRef,
    now: number,
    handles?: readonly unknown[],
    holdHandles?: readonly unknown[],
  ): number {
    let removed = 0;
    for (let i = 0; i < ref.gauges.length; i++) {
      const g = ref.gauges[i]!;
      const entry = liveGauge(handles?.[i], g.key, g.name) ?? this.peekGauge(g.key, g.name);
      if (entry === undefined) continue;
      // without a clock (see clockFree) now is NaN and the count is not read
      const expiry = dropLease(entry, ref.id);
      if (expiry !== undefined && expiry > now) removed++;
    }
    for (let i = 0; i < ref.holds.length; i++) {
      const h = ref.holds[i]!;
      const entry = liveWindow(holdHandles?.[i], h.key) ?? this.peekWindow(h.key);
      const expiry = dropHold(entry === undefined ? undefined : findCounter(entry, h.name), ref.id);
      if (expiry !== undefined && expiry > now) removed++;
    }
    return removed;
  }

  /** The key's window, moved to the most-recent end of the LRU. */
  private windowEntry(key: string): WindowEntry | undefined {
    const entry = asWindow(this.cache.get(this.prefix + key), key);
    if (entry !== undefined) entry.touched = ++this.ops;
    return entry;
  }

  /**
   * A live window reached through the handle a caller kept from an earlier answer: no lookup. Its LRU position is
   * refreshed only once `refreshAfter` (half the capacity) operations have passed since it was last moved: until
   * then at least half the entries are older than it, so it cannot be the next one evicted. The LRU order is thus
   * approximate among recently used windows: a window used at least once every maxEntries / 2 operations is never
   * evicted (with a strict order: every maxEntries - 1).
   */
  private byHandle<E extends WindowEntry | GaugeEntry>(entry: E): E {
    if (this.ops - entry.touched >= this.refreshAfter) {
      this.cache.get(entry.kind === "window" ? this.prefix + entry.key : `${this.prefix}${entry.base}:${entry.name}`);
      entry.touched = ++this.ops;
    }
    return entry;
  }

  private peekWindow(key: string): WindowEntry | undefined {
    return asWindow(this.cache.peek(this.prefix + key), key);
  }

  private gaugeEntry(key: string, name: string): GaugeEntry | undefined {
    const entry = asGauge(this.cache.get(`${this.prefix}${key}:${name}`), key);
    if (entry !== undefined) entry.touched = ++this.ops;
    return entry;
  }

  private peekGauge(key: string, name: string): GaugeEntry | undefined {
    return asGauge(this.cache.peek(`${this.prefix}${key}:${name}`), key);
  }

  private assertOpen(): void {
    if (this.closed) throw new TollgateError("STORE_CLOSED", "[memory] the store is closed");
  }
}

/**
 * True when an adjustment whose result is not read can do without the clock: every window is fixed and passed
 * with its handle and guard. The guard then compares starts only; a window that has expired but not rolled takes
 * the delta, which disappears when the window rolls: the same outcome as refusing it (see FlatBatch.readBack).
 * Lease releases delete by id whatever the time.
 */
function clockFree(b: FlatBatch): boolean {
  for (let i = 0; i < b.windowCount; i++) {
    if (b.sliding[i] || b.handles[i] === undefined || Number.isNaN(b.expectStart[i]!)) return false;
  }
  return true;
}

/** A counter's value in the window as rolled: 0 in a fresh or shifted window. */
function valueAt(counter: Counter | undefined, roll: Roll): number {
  return counter !== undefined && roll === KEEP ? counter.value : 0;
}

/** The previous window's value as rolled: after a shift, the value of the window that just ended. */
function previousAt(counter: Counter | undefined, roll: Roll): number {
  if (counter === undefined || roll === RESET) return 0;
  return roll === SHIFT ? counter.value : counter.previous;
}

/** Writes a counter's state as seen at `now` into the result slot `c`. */
function viewInto(r: FlatResult, c: number, counter: Counter | undefined, roll: Roll, held: number): void {
  r.values[c] = valueAt(counter, roll);
  r.previous[c] = previousAt(counter, roll);
  r.held[c] = held;
}

function asWindow(e: Entry | undefined, key: string): WindowEntry | undefined {
  if (e === undefined || e.kind === "window") return e;
  throw new TollgateError("STORE_DATA_CORRUPT", `[memory] ${key} holds a gauge, not a window`);
}

/** `handle` when it is a live window entry of this key (a hint), else undefined. */
function liveWindow(handle: unknown, key: string): WindowEntry | undefined {
  const w = handle as WindowEntry | undefined;
  return w !== undefined && !w.dead && w.key === key ? w : undefined;
}

/** `handle` when it is a live gauge entry of this base key and name (a hint), else undefined. */
function liveGauge(handle: unknown, base: string, name: string): GaugeEntry | undefined {
  const g = handle as GaugeEntry | undefined;
  return g !== undefined && !g.dead && g.base === base && g.name === name ? g : undefined;
}

function asGauge(e: Entry | undefined, key: string): GaugeEntry | undefined {
  if (e === undefined || e.kind === "gauge") return e;
  throw new TollgateError("STORE_DATA_CORRUPT", `[memory] ${key} holds a window, not a gauge`);
}

/**
 * The contract's check: `add > 0 && used + add > limit`, or `add == 0 && used >= limit`, where a sliding
 * window's `used` weights the previous window by its overlap (compared exactly, multiplied through by W).
 */
function exceeds(
  value: number,
  previous: number,
  held: number,
  add: number,
  limit: number,
  windowMs: number,
  sliding: boolean,
  start: number,
  now: number,
): boolean {
  const current = value + held + add;
  if (!sliding || previous === 0) return add > 0 ? current > limit : current >= limit;
  const lhs = previous * (windowMs - (now - start)) + current * windowMs;
  return add > 0 ? lhs > limit * windowMs : lhs >= limit * windowMs;
}

/** Creates a bounded in-memory {@link CounterStore}. */
export function createMemoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  return new MemoryStore(options);
}
