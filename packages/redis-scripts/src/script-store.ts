/**
 * A generic `CounterStore` over the Lua scripts: it validates, encodes, runs one script per round trip
 * through an injected executor, and decodes. The Redis store (standalone and Cluster) and the Upstash store
 * are thin layers that only provide the executor.
 */
import {
  type AdjustBatch,
  type AdjustResult,
  type AdmitBatch,
  type AdmitResult,
  type CounterStore,
  type DeniedAt,
  type LeaseRef,
  type ReadQuery,
  type ReadResult,
  STORE_CONTRACT_VERSION,
  TollgateError,
  validateAdjustBatch,
  validateAdmitBatch,
  validateReadQuery,
  validateRenew,
} from "@tollgate/core";
import {
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
import { DEFAULT_PREFIX, gaugeKey, holdKeys, windowKey } from "./keys.js";

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
   * script per slot group, run in parallel; a denial in any group compensates the groups already applied.
   * Without it every batch is one script, one round trip. @default undefined (single slot)
   */
  slotOf?: (key: string) => number;
  /**
   * Testing only: the store clock in ms, read on every call and used by the scripts instead of server TIME,
   * so tests can move time without sleeping. @default undefined (server TIME)
   */
  testClock?: () => number;
  /** Called once by the first `close()`, e.g. to quit a client the store owns. */
  onClose?: () => Promise<void> | void;
}

/** Groups item indices by slot: one entry per slot, each holding the indices of every list. */
function groupBySlot(slotOf: (key: string) => number, lists: string[][]): number[][][] {
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
  return [...bySlot.values()];
}

const pick = <T>(items: T[], idx: number[]): T[] => idx.map((i) => items[i]!);

/** Copies a slot group's results back to their places in the whole batch: `into[idx[j]] = from[j]`. */
function scatter<T>(idx: number[], from: readonly T[], into: T[]): void {
  idx.forEach((i, j) => {
    into[i] = from[j]!;
  });
}

/** Orders denials the way the contract checks them: windows in order, then gauges. */
function deniedRank(d: DeniedAt): number {
  if (d.type === "ticket") return 2e15;
  return d.type === "counter" ? d.window * 1e6 + d.counter : 1e15 + d.gauge;
}

class ScriptStore implements CounterStore {
  readonly contractVersion = STORE_CONTRACT_VERSION;
  readonly name: string;
  private readonly exec: ScriptExecutor;
  private readonly prefix: string;
  private readonly slotOf: ((key: string) => number) | undefined;
  private readonly testClock: (() => number) | undefined;
  private readonly onClose: (() => Promise<void> | void) | undefined;
  private closed = false;

  constructor(o: ScriptStoreOptions) {
    this.name = o.name;
    this.exec = o.exec;
    this.prefix = o.prefix ?? DEFAULT_PREFIX;
    this.slotOf = o.slotOf;
    this.testClock = o.testClock;
    this.onClose = o.onClose;
  }

  private opts() {
    return { prefix: this.prefix, testNowMs: this.testClock?.() };
  }

  private checkOpen(): void {
    if (this.closed) throw new TollgateError("STORE_CLOSED", `[${this.name}] the store is closed`);
  }

  /**
   * Cluster only: the slot groups of a batch (see {@link groupBySlot}), or `undefined` when the store is not
   * clustered or the batch fits one slot. `lists` is only called for a clustered store.
   */
  private slotGroups(lists: () => string[][]): number[][][] | undefined {
    if (!this.slotOf) return undefined;
    const groups = groupBySlot(this.slotOf, lists());
    return groups.length > 1 ? groups : undefined;
  }

  private async run(call: ScriptCall): Promise<unknown> {
    try {
      return await this.exec(call.script, call.keys, call.args);
    } catch (err) {
      throw toStoreError(this.name, err);
    }
  }

  async admit(batch: AdmitBatch): Promise<AdmitResult> {
    this.checkOpen();
    validateAdmitBatch(batch);
    const groups = this.slotGroups(() => [
      batch.windows.map((w) => windowKey(this.prefix, w.key)),
      batch.gauges.map((g) => gaugeKey(this.prefix, g.key, g.name)),
    ]);
    return groups ? this.admitAcrossSlots(batch, groups) : this.admitOne(batch);
  }

  private async admitOne(batch: AdmitBatch): Promise<AdmitResult> {
    return decodeAdmit(batch, await this.run(encodeAdmit(batch, this.opts())));
  }

  /**
   * Cluster path: one script per slot group, in parallel. When a group denies (or fails), every group that
   * applied is compensated with a window-guarded adjustment (counters back by their amounts) and a release
   * of the lease on its gauges and holds. Between apply and compensate another request may see the higher
   * count and be denied spuriously; it can never be admitted over a limit.
   */
  private async admitAcrossSlots(batch: AdmitBatch, groups: number[][][]): Promise<AdmitResult> {
    const subs = groups.map(([w, g]) => ({
      windows: pick(batch.windows, w!),
      gauges: pick(batch.gauges, g!),
      lease: batch.lease,
    }));
    const settled = await Promise.allSettled(subs.map((s) => this.admitOne(s)));
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
        scatter(groups[gi]![0]!, r.windows, windows);
        scatter(groups[gi]![1]!, r.gauges, gauges);
      });
      return { admitted: true, now, windows, gauges };
    }
    // Undo every group that applied, then answer as if nothing had been applied.
    const undo: Promise<unknown>[] = [];
    let now = 0;
    let denied: DeniedAt | undefined;
    settled.forEach((s, gi) => {
      if (s.status !== "fulfilled") return;
      const r = s.value;
      const sub = subs[gi]!;
      const [wIdx, gIdx] = groups[gi] as [number[], number[]];
      now = Math.max(now, r.now);
      if (r.admitted) {
        undo.push(this.compensate(sub, r).catch(() => undefined));
        sub.windows.forEach((w, j) => {
          const st = r.windows[j]!;
          windows[wIdx[j]!] = {
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
          gauges[gIdx[j]!] = { inFlight, earliestExpiry: inFlight > 0 ? gs.earliestExpiry : null };
        });
      } else {
        scatter(wIdx, r.windows, windows);
        scatter(gIdx, r.gauges, gauges);
        const d = r.denied!;
        const global: DeniedAt =
          d.type === "counter"
            ? { type: "counter", window: wIdx[d.window]!, counter: d.counter }
            : d.type === "gauge"
              ? { type: "gauge", gauge: gIdx[d.gauge]! }
              : d;
        if (!denied || deniedRank(global) < deniedRank(denied)) denied = global;
      }
    });
    await Promise.all(undo);
    if (failure !== undefined) throw failure;
    return { admitted: false, now, denied: denied!, windows, gauges };
  }

  private async compensate(sub: AdmitBatch, applied: AdmitResult): Promise<void> {
    const lease = sub.lease;
    const adjust: AdjustBatch = {
      readBack: false,
      windows: sub.windows.map((w, j) => ({
        key: w.key,
        windowMs: w.windowMs,
        algorithm: w.algorithm,
        expectStart: applied.windows[j]!.start,
        counters: w.counters.map((c) => ({ name: c.name, delta: -c.amount })),
      })),
    };
    if (lease) {
      adjust.release = {
        id: lease.id,
        gauges: sub.gauges.map((g) => ({ key: g.key, name: g.name })),
        holds: sub.windows.flatMap((w) =>
          w.counters.filter((c) => (c.hold ?? 0) > 0).map((c) => ({ key: w.key, name: c.name })),
        ),
      };
    }
    await this.run(encodeAdjust(adjust, this.opts()));
  }

  async adjust(batch: AdjustBatch): Promise<AdjustResult> {
    this.checkOpen();
    validateAdjustBatch(batch);
    const rel = batch.release;
    const groups = this.slotGroups(() => [
      batch.windows.map((w) => windowKey(this.prefix, w.key)),
      rel ? rel.gauges.map((g) => gaugeKey(this.prefix, g.key, g.name)) : [],
      rel ? rel.holds.map((h) => holdKeys(this.prefix, h.key, h.name)[0]) : [],
    ]);
    if (!groups) return this.adjustOne(batch);
    // Not atomic across slots (nothing can be); each slot group is atomic on its own.
    const results = await Promise.all(
      groups.map(([w, g, h]) => {
        const sub: AdjustBatch = { windows: pick(batch.windows, w!) };
        if (batch.readBack === false) sub.readBack = false;
        if (rel && (g!.length > 0 || h!.length > 0)) {
          sub.release = { id: rel.id, gauges: pick(rel.gauges, g!), holds: pick(rel.holds, h!) };
        }
        return this.adjustOne(sub);
      }),
    );
    const out: AdjustResult = {
      now: 0,
      applied: new Array(batch.windows.length),
      windows: new Array(batch.windows.length),
      released: 0,
    };
    results.forEach((r, gi) => {
      out.now = Math.max(out.now, r.now);
      out.released += r.released;
      scatter(groups[gi]![0]!, r.applied, out.applied);
      scatter(groups[gi]![0]!, r.windows, out.windows);
    });
    if (batch.readBack === false) out.windows = [];
    return out;
  }

  private async adjustOne(batch: AdjustBatch): Promise<AdjustResult> {
    return decodeAdjust(batch, await this.run(encodeAdjust(batch, this.opts())));
  }

  async renew(lease: LeaseRef, ttlMs: number): Promise<number> {
    this.checkOpen();
    validateRenew(lease, ttlMs);
    const groups = this.slotGroups(() => [
      lease.gauges.map((g) => gaugeKey(this.prefix, g.key, g.name)),
      lease.holds.map((h) => holdKeys(this.prefix, h.key, h.name)[0]),
    ]);
    if (!groups) return this.renewOne(lease, ttlMs);
    const counts = await Promise.all(
      groups.map(([g, h]) =>
        this.renewOne({ id: lease.id, gauges: pick(lease.gauges, g!), holds: pick(lease.holds, h!) }, ttlMs),
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  private async renewOne(lease: LeaseRef, ttlMs: number): Promise<number> {
    return decodeRenew(await this.run(encodeRenew(lease, ttlMs, this.opts())));
  }

  async read(query: ReadQuery): Promise<ReadResult> {
    this.checkOpen();
    validateReadQuery(query);
    const groups = this.slotGroups(() => [
      query.windows.map((w) => windowKey(this.prefix, w.key)),
      query.gauges.map((g) => gaugeKey(this.prefix, g.key, g.name)),
    ]);
    if (!groups) return this.readOne(query);
    const results = await Promise.all(
      groups.map(([w, g]) => this.readOne({ windows: pick(query.windows, w!), gauges: pick(query.gauges, g!) })),
    );
    const out: ReadResult = {
      now: 0,
      windows: new Array(query.windows.length),
      gauges: new Array(query.gauges.length),
    };
    results.forEach((r, gi) => {
      out.now = Math.max(out.now, r.now);
      scatter(groups[gi]![0]!, r.windows, out.windows);
      scatter(groups[gi]![1]!, r.gauges, out.gauges);
    });
    return out;
  }

  private async readOne(query: ReadQuery): Promise<ReadResult> {
    return decodeRead(query, await this.run(encodeRead(query, this.opts())));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
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
export function createScriptStore(options: ScriptStoreOptions): CounterStore {
  return new ScriptStore(options);
}
