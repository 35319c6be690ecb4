/**
 * A generic `CounterStore` over the Lua scripts: it validates, encodes, runs one script per round trip
 * through an injected executor, and decodes. The Redis store (standalone and Cluster) and the Upstash store
 * are thin layers that only provide the executor.
 *
 * Every admission records a ticket (contract 2): the caller's when the batch asks for one, else one of the store's
 * own. A script call that gets no answer in time may still be applied by Redis later; for an admission the store
 * then sends a compensation keyed by that ticket, which undoes the admission if it was applied, or marks the ticket
 * finished so that a late arrival is refused. Either way nothing stays counted for a call that failed.
 */
import {
  type AdjustBatch,
  type AdjustResult,
  type AdmitBatch,
  type AdmitResult,
  type CounterStore,
  createIdGenerator,
  type DeniedAt,
  type LeaseRef,
  type ReadQuery,
  type ReadResult,
  STORE_CONTRACT_VERSION,
  StoreUnavailableError,
  type TicketState,
  TollgateError,
  validateAdjustBatch,
  validateAdmitBatch,
  validateReadQuery,
  validateRenew,
} from "@tollgate/core";
import {
  type AdjustTicket,
  decodeAdjust,
  decodeAdmit,
  decodeRead,
  decodeRenew,
  encodeAdjust,
  encodeAdmit,
  encodeRead,
  encodeRenew,
  type ScriptCall,
} from "./codec.js";
import { toStoreError } from "./errors.js";
import type { ScriptExecutor } from "./executor.js";
import { DEFAULT_PREFIX, gaugeKey, holdKeys, slotTag, ticketKey, windowKey } from "./keys.js";
import { type ReplayDropReason, ReplayQueue } from "./replay-queue.js";

/** Default of {@link ScriptStoreOptions.ticketKeepMs}. */
export const DEFAULT_TICKET_KEEP_MS = 60_000;

/** Options of {@link createScriptStore}. */
export interface ScriptStoreOptions {
  /** Store name used in errors, e.g. `"redis"`, `"upstash"`. */
  name: string;
  /** Runs one script (one round trip). See {@link evalshaWithFallback}. */
  exec: ScriptExecutor;
  /** Prepended to every key, outside the braces. @default "tollgate:" */
  prefix?: string;
  /**
   * Hash slot of a key. When given (Redis Cluster), a batch whose keys span several slots is split into one
   * script per slot group, run in parallel, each with its own ticket; a denial or failure in any group compensates
   * the others. Without it every batch is one script, one round trip. @default undefined (single slot)
   */
  slotOf?: (key: string) => number;
  /**
   * A script call not answered within this many ms fails with `StoreUnavailableError`, and an admission is then
   * compensated (its answer is unknown: it may still be applied). @default undefined (no timeout of its own)
   */
  timeoutMs?: number;
  /**
   * How long the store's own tickets live: the finished mark of a compensation (a late admission arriving within
   * it is refused) and the ticket of an admission that did not ask for one. @default 60000
   */
  ticketKeepMs?: number;
  /** Pause between retries of compensations that could not reach the backend, ms. @default 1000 */
  retryIntervalMs?: number;
  /** Local clock for retry deadlines. @default Date.now */
  now?: () => number;
  /**
   * Started at creation and awaited (at most `timeoutMs`) by the first calls, e.g. `SCRIPT LOAD` of every script so
   * that a burst on a cold client does not send the full scripts with EVAL. A failure is ignored: the executor's
   * NOSCRIPT fallback still works.
   */
  ready?: () => Promise<unknown>;
  /**
   * Testing only: the store clock in ms, read on every call and used by the scripts instead of server TIME,
   * so tests can move time without sleeping. @default undefined (server TIME)
   */
  testClock?: () => number;
  /** Called once by the first `close()`, e.g. to quit a client the store owns. */
  onClose?: () => Promise<void> | void;
  /** Called for a compensation given up without reaching the backend (after `ticketKeepMs`, or at `close()`). */
  onReplayDrop?: (label: string, reason: ReplayDropReason, error?: unknown) => void;
}

/** The store {@link createScriptStore} makes: a `CounterStore` that also reports its pending compensations. */
export interface ScriptStore extends CounterStore {
  /** The store times its own calls out (`timeoutMs`), so a wrapper need not race them. */
  readonly timeoutMs: number | undefined;
  /** Compensations waiting to reach the backend. */
  readonly pendingCompensations: number;
  /** Retries the waiting compensations until none waits or `timeoutMs` passed; answers how many still wait. */
  flush(timeoutMs: number): Promise<number>;
}

/** Groups item indices by slot: one entry per slot, each holding the slot and the indices of every list. */
function groupBySlot(slotOf: (key: string) => number, lists: string[][]): Array<{ slot: number; idx: number[][] }> {
  const bySlot = new Map<number, number[][]>();
  lists.forEach((keys, kind) => {
    keys.forEach((key, i) => {
      const slot = slotOf(key);
      let group = bySlot.get(slot);
      if (!group) {
        group = lists.map(() => []);
        bySlot.set(slot, group);
      }
      group[kind]!.push(i);
    });
  });
  return [...bySlot].map(([slot, idx]) => ({ slot, idx }));
}

const pick = <T>(items: readonly T[], idx: number[]): T[] => idx.map((i) => items[i]!);

/** Copies a slot group's results back to their places in the whole batch: `into[idx[j]] = from[j]`. */
function scatter<T>(idx: number[], from: readonly T[], into: T[]): void {
  idx.forEach((i, j) => {
    into[i] = from[j]!;
  });
}

/** Orders denials the way the contract checks them: windows in order, then gauges (a finished ticket last). */
function deniedRank(d: DeniedAt): number {
  if (d.type === "ticket") return 2e15;
  return d.type === "counter" ? d.window * 1e6 + d.counter : 1e15 + d.gauge;
}

/** The ticket state a split adjustment answers: open when any group applied, else unknown, else finished. */
function combineTickets(states: Array<TicketState | undefined>): TicketState | undefined {
  if (states.includes("open")) return "open";
  if (states.includes("unknown")) return "unknown";
  return states.includes("finished") ? "finished" : undefined;
}

const isUnavailable = (err: unknown): boolean => err instanceof TollgateError && err.code === "STORE_UNAVAILABLE";

/** Rejects with `StoreUnavailableError` when `p` has not settled within `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number, store: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreUnavailableError(store, `no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** One slot group of an admission: its part of the batch and its ticket key. */
interface AdmitGroup {
  batch: AdmitBatch;
  ticket: string;
  windows: number[];
  gauges: number[];
}

class ScriptStoreImpl implements ScriptStore {
  readonly contractVersion = STORE_CONTRACT_VERSION;
  readonly name: string;
  readonly timeoutMs: number | undefined;
  private readonly exec: ScriptExecutor;
  private readonly prefix: string;
  private readonly slotOf: ((key: string) => number) | undefined;
  private readonly testClock: (() => number) | undefined;
  private readonly onClose: (() => Promise<void> | void) | undefined;
  private readonly keepMs: number;
  private readonly now: () => number;
  private readonly replays: ReplayQueue;
  private readonly internalId = createIdGenerator();
  private ready: Promise<unknown> | undefined;
  private closed = false;

  constructor(o: ScriptStoreOptions) {
    this.name = o.name;
    this.exec = o.exec;
    this.prefix = o.prefix ?? DEFAULT_PREFIX;
    this.slotOf = o.slotOf;
    this.testClock = o.testClock;
    this.onClose = o.onClose;
    this.timeoutMs = o.timeoutMs;
    this.keepMs = o.ticketKeepMs ?? DEFAULT_TICKET_KEEP_MS;
    this.now = o.now ?? Date.now;
    this.replays = new ReplayQueue({
      retryIntervalMs: o.retryIntervalMs ?? 1000,
      now: this.now,
      onDrop: o.onReplayDrop,
    });
    if (o.ready) {
      const started = o.ready().then(
        () => undefined,
        () => undefined,
      );
      this.ready = started;
      void started.then(() => {
        this.ready = undefined;
      });
    }
  }

  get pendingCompensations(): number {
    return this.replays.size;
  }

  flush(timeoutMs: number): Promise<number> {
    return this.replays.flush(timeoutMs);
  }

  private opts() {
    return { prefix: this.prefix, testNowMs: this.testClock?.() };
  }

  private checkOpen(): void {
    if (this.closed) throw new TollgateError("STORE_CLOSED", `[${this.name}] the store is closed`);
  }

  /** The first calls wait for `ready` (script loading), at most `timeoutMs`. */
  private async whenReady(): Promise<void> {
    const ready = this.ready;
    if (!ready) return;
    await (this.timeoutMs === undefined
      ? ready
      : Promise.race([ready, new Promise((r) => setTimeout(r, this.timeoutMs))]));
  }

  /** The ticket key of a slot group (`slot` undefined on a single Redis). */
  private ticketKeyOf(id: string, slot: number | undefined): string {
    return slot === undefined ? ticketKey(this.prefix, id) : ticketKey(this.prefix, id, slotTag(this.slotOf!, slot));
  }

  private async run(call: ScriptCall): Promise<unknown> {
    const p = this.exec(call.script, call.keys, call.args);
    try {
      return await (this.timeoutMs === undefined ? p : withTimeout(p, this.timeoutMs, this.name));
    } catch (err) {
      throw toStoreError(this.name, err);
    }
  }

  // ---- admit ----

  async admit(batch: AdmitBatch): Promise<AdmitResult> {
    this.checkOpen();
    validateAdmitBatch(batch);
    if (this.ready) await this.whenReady();
    const own = batch.ticket === true;
    const id = own ? batch.lease!.id : `~${this.internalId()}`;
    const ttlMs = own ? batch.lease!.ttlMs : this.keepMs;
    if (!this.slotOf) return this.admitGroup(batch, this.ticketKeyOf(id, undefined), ttlMs);
    const groups = groupBySlot(this.slotOf, [
      batch.windows.map((w) => windowKey(this.prefix, w.key)),
      batch.gauges.map((g) => gaugeKey(this.prefix, g.key, g.name)),
    ]);
    if (groups.length === 0) return this.admitGroup(batch, this.ticketKeyOf(id, 0), ttlMs);
    if (groups.length === 1) return this.admitGroup(batch, this.ticketKeyOf(id, groups[0]!.slot), ttlMs);
    return this.admitAcrossSlots(
      batch,
      groups.map(({ slot, idx: [w, g] }) => ({
        batch: { windows: pick(batch.windows, w!), gauges: pick(batch.gauges, g!), lease: batch.lease },
        ticket: this.ticketKeyOf(id, slot),
        windows: w!,
        gauges: g!,
      })),
      ttlMs,
    );
  }

  /** One script for one slot group; a call that got no answer is compensated (it may still apply). */
  private async admitGroup(batch: AdmitBatch, ticket: string, ttlMs: number): Promise<AdmitResult> {
    try {
      return decodeAdmit(batch, await this.run(encodeAdmit(batch, this.opts(), { key: ticket, ttlMs })));
    } catch (err) {
      if (isUnavailable(err)) this.compensateLater(batch, ticket);
      throw err;
    }
  }

  /** The adjustment that undoes an admission: counters back by their amounts, the lease off its gauges and holds. */
  private undoOf(sub: AdmitBatch): AdjustBatch {
    const adjust: AdjustBatch = {
      readBack: false,
      windows: sub.windows.map((w) => ({
        key: w.key,
        windowMs: w.windowMs,
        algorithm: w.algorithm,
        noHolds: w.noHolds,
        counters: w.counters.map((c) => ({ name: c.name, delta: -c.amount })),
      })),
    };
    const lease = sub.lease;
    if (lease && (sub.gauges.length > 0 || sub.windows.some((w) => w.counters.some((c) => (c.hold ?? 0) > 0)))) {
      adjust.release = {
        id: lease.id,
        gauges: sub.gauges.map((g) => ({ key: g.key, name: g.name })),
        holds: sub.windows.flatMap((w) =>
          w.counters.filter((c) => (c.hold ?? 0) > 0).map((c) => ({ key: w.key, name: c.name })),
        ),
      };
    }
    return adjust;
  }

  /** Sends an undo keyed by the group's ticket. */
  private undo(sub: AdmitBatch, ticket: string, mode: "release" | "discard"): Promise<unknown> {
    const t: AdjustTicket = { key: ticket, mode, keepMs: this.keepMs, guardByTicket: true };
    return this.run(encodeAdjust(this.undoOf(sub), this.opts(), t));
  }

  /**
   * Queues the compensation of an admission whose answer is unknown (sent at once, then retried while the backend
   * cannot be reached): it undoes the admission if its ticket is open, and marks the ticket finished either way,
   * so the admission, should it arrive later, is refused.
   */
  private compensateLater(sub: AdmitBatch, ticket: string): void {
    this.replays.add(`compensate ${ticket}`, () => this.undo(sub, ticket, "release"), this.now() + this.keepMs);
  }

  /**
   * Cluster path: one script per slot group, in parallel. When every group admitted, the request is admitted. When
   * a group denied, every group that applied is undone (and its ticket forgotten, so the id may be admitted again)
   * before answering the denial. When a group got no answer, it and every group that applied are compensated in the
   * background (their tickets end finished) and the call fails. Between apply and undo another request may see a
   * higher count and be denied spuriously; it can never be admitted over a limit.
   */
  private async admitAcrossSlots(batch: AdmitBatch, groups: AdmitGroup[], ttlMs: number): Promise<AdmitResult> {
    const settled = await Promise.allSettled(
      groups.map(async (g) =>
        decodeAdmit(g.batch, await this.run(encodeAdmit(g.batch, this.opts(), { key: g.ticket, ttlMs }))),
      ),
    );
    let failure: unknown;
    let allAdmitted = true;
    for (const s of settled) {
      if (s.status === "rejected") failure ??= s.reason;
      else if (!s.value.admitted) allAdmitted = false;
    }
    const windows: AdmitResult["windows"] = new Array(batch.windows.length);
    const gauges: AdmitResult["gauges"] = new Array(batch.gauges.length);
    if (failure === undefined && allAdmitted) {
      let now = 0;
      settled.forEach((s, gi) => {
        const r = (s as PromiseFulfilledResult<AdmitResult>).value;
        now = Math.max(now, r.now);
        scatter(groups[gi]!.windows, r.windows, windows);
        scatter(groups[gi]!.gauges, r.gauges, gauges);
      });
      return { admitted: true, now, windows, gauges };
    }
    if (failure !== undefined) {
      // Some group's answer is unknown (or it failed on data): undo every group that applied or may have applied.
      settled.forEach((s, gi) => {
        const g = groups[gi]!;
        if (s.status === "rejected" ? isUnavailable(s.reason) : s.value.admitted)
          this.compensateLater(g.batch, g.ticket);
      });
      throw failure;
    }
    // Every group answered and one denied: undo the groups that applied, then answer as if nothing had applied.
    const undo: Array<Promise<unknown>> = [];
    let now = 0;
    let denied: DeniedAt | undefined;
    settled.forEach((s, gi) => {
      const r = (s as PromiseFulfilledResult<AdmitResult>).value;
      const g = groups[gi]!;
      const sub = g.batch;
      now = Math.max(now, r.now);
      if (r.admitted) {
        undo.push(
          this.undo(sub, g.ticket, "discard").catch((err: unknown) => {
            // The undo's answer is lost too: finish the ticket in the background and fail this call.
            this.compensateLater(sub, g.ticket);
            failure ??= err;
          }),
        );
        sub.windows.forEach((w, j) => {
          const st = r.windows[j]!;
          windows[g.windows[j]!] = {
            start: st.start,
            counters: st.counters.map((c, ci) => ({
              value: c.value - w.counters[ci]!.amount,
              previous: c.previous,
              held: Math.max(0, c.held - (w.counters[ci]!.hold ?? 0)),
            })),
          };
        });
        r.gauges.forEach((gs, j) => {
          const inFlight = gs.inFlight - 1;
          gauges[g.gauges[j]!] = { inFlight, earliestExpiry: inFlight > 0 ? gs.earliestExpiry : null };
        });
      } else {
        scatter(g.windows, r.windows, windows);
        scatter(g.gauges, r.gauges, gauges);
        const d = r.denied!;
        const global: DeniedAt =
          d.type === "counter"
            ? { type: "counter", window: g.windows[d.window]!, counter: d.counter }
            : d.type === "gauge"
              ? { type: "gauge", gauge: g.gauges[d.gauge]! }
              : d;
        if (!denied || deniedRank(global) < deniedRank(denied)) denied = global;
      }
    });
    await Promise.all(undo);
    if (failure !== undefined) throw failure;
    return { admitted: false, now, denied: denied!, windows, gauges };
  }

  // ---- adjust ----

  async adjust(batch: AdjustBatch): Promise<AdjustResult> {
    this.checkOpen();
    validateAdjustBatch(batch);
    if (this.ready) await this.whenReady();
    const t = batch.ticket;
    const ticketOf = (slot: number | undefined): AdjustTicket | undefined =>
      t && { key: this.ticketKeyOf(t.id, slot), mode: t.finish, keepMs: t.keepMs };
    if (!this.slotOf) return this.adjustOne(batch, ticketOf(undefined));
    const rel = batch.release;
    const groups = groupBySlot(this.slotOf, [
      batch.windows.map((w) => windowKey(this.prefix, w.key)),
      rel ? rel.gauges.map((g) => gaugeKey(this.prefix, g.key, g.name)) : [],
      rel ? rel.holds.map((h) => holdKeys(this.prefix, h.key, h.name)[0]) : [],
      // the admission's windows: a slot group with nothing to adjust still has its ticket to finish
      t && rel?.windows ? rel.windows.map((k) => windowKey(this.prefix, k)) : [],
    ]);
    if (groups.length === 0) return this.adjustOne(batch, ticketOf(0));
    if (groups.length === 1) return this.adjustOne(batch, ticketOf(groups[0]!.slot));
    // Not atomic across slots (nothing can be); each slot group is atomic on its own, and exactly once by its ticket,
    // so a retry of the whole batch applies only the groups that did not apply.
    const settled = await Promise.allSettled(
      groups.map(({ slot, idx: [w, g, h] }) => {
        const sub: AdjustBatch = { windows: pick(batch.windows, w!) };
        if (batch.readBack === false) sub.readBack = false;
        if (rel && (g!.length > 0 || h!.length > 0)) {
          sub.release = { id: rel.id, gauges: pick(rel.gauges, g!), holds: pick(rel.holds, h!) };
        }
        return this.adjustOne(sub, ticketOf(slot));
      }),
    );
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const results = settled.map((s) => (s as PromiseFulfilledResult<AdjustResult>).value);
    const out: AdjustResult = {
      now: 0,
      applied: new Array(batch.windows.length),
      windows: new Array(batch.windows.length),
      released: 0,
    };
    results.forEach((r, gi) => {
      out.now = Math.max(out.now, r.now);
      out.released += r.released;
      scatter(groups[gi]!.idx[0]!, r.applied, out.applied);
      scatter(groups[gi]!.idx[0]!, r.windows, out.windows);
    });
    if (batch.readBack === false) out.windows = [];
    const ticket = combineTickets(results.map((r) => r.ticket));
    if (ticket !== undefined) out.ticket = ticket;
    return out;
  }

  private async adjustOne(batch: AdjustBatch, ticket: AdjustTicket | undefined): Promise<AdjustResult> {
    return decodeAdjust(batch, await this.run(encodeAdjust(batch, this.opts(), ticket)));
  }

  // ---- renew ----

  async renew(lease: LeaseRef, ttlMs: number): Promise<number> {
    this.checkOpen();
    validateRenew(lease, ttlMs);
    if (this.ready) await this.whenReady();
    if (!this.slotOf) {
      const r = await this.renewOne(lease, ttlMs, this.ticketKeyOf(lease.id, undefined));
      return r.renewed + (r.ticket ? 1 : 0);
    }
    const groups = groupBySlot(this.slotOf, [
      lease.gauges.map((g) => gaugeKey(this.prefix, g.key, g.name)),
      lease.holds.map((h) => holdKeys(this.prefix, h.key, h.name)[0]),
      (lease.windows ?? []).map((w) => windowKey(this.prefix, w)),
    ]);
    const counts = await Promise.all(
      groups.map(({ slot, idx: [g, h] }) =>
        this.renewOne(
          { id: lease.id, gauges: pick(lease.gauges, g!), holds: pick(lease.holds, h!) },
          ttlMs,
          this.ticketKeyOf(lease.id, slot),
        ),
      ),
    );
    // The ticket counts as one entry, however many slot groups keep a part of it.
    return counts.reduce((n, r) => n + r.renewed, 0) + (counts.some((r) => r.ticket) ? 1 : 0);
  }

  private async renewOne(
    lease: LeaseRef,
    ttlMs: number,
    ticket: string,
  ): Promise<{ renewed: number; ticket: boolean }> {
    return decodeRenew(await this.run(encodeRenew(lease, ttlMs, this.opts(), ticket)));
  }

  // ---- read ----

  async read(query: ReadQuery): Promise<ReadResult> {
    this.checkOpen();
    validateReadQuery(query);
    if (this.ready) await this.whenReady();
    const groups = this.slotOf
      ? groupBySlot(this.slotOf, [
          query.windows.map((w) => windowKey(this.prefix, w.key)),
          query.gauges.map((g) => gaugeKey(this.prefix, g.key, g.name)),
        ])
      : [];
    if (groups.length <= 1) return this.readOne(query);
    const results = await Promise.all(
      groups.map(({ idx: [w, g] }) =>
        this.readOne({ windows: pick(query.windows, w!), gauges: pick(query.gauges, g!) }),
      ),
    );
    const out: ReadResult = {
      now: 0,
      windows: new Array(query.windows.length),
      gauges: new Array(query.gauges.length),
    };
    results.forEach((r, gi) => {
      out.now = Math.max(out.now, r.now);
      scatter(groups[gi]!.idx[0]!, r.windows, out.windows);
      scatter(groups[gi]!.idx[1]!, r.gauges, out.gauges);
    });
    return out;
  }

  private async readOne(query: ReadQuery): Promise<ReadResult> {
    return decodeRead(query, await this.run(encodeRead(query, this.opts())));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Compensations still waiting get one last chance while the connection is up.
    if (this.replays.size > 0) await this.replays.flush(this.timeoutMs ?? 1000);
    this.replays.close();
    await this.onClose?.();
  }
}

/**
 * Creates a `CounterStore` that runs the shared Lua scripts through `exec`.
 * @example
 * const store = createScriptStore({
 *   name: "redis",
 *   exec: evalshaWithFallback({ evalsha: ..., eval: ... }),
 * });
 */
export function createScriptStore(options: ScriptStoreOptions): ScriptStore {
  return new ScriptStoreImpl(options);
}
