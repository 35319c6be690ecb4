/**
 * The engines' one way to a store: a batch in flat form goes to the store's declared flat capability synchronously
 * (the memory store), or to the contract's `admit` / `adjust` in object form (every other store), and the answer
 * comes back in flat form either way, so the code that reads it is the same for both.
 */
import { TollgateError } from "./errors.js";
import {
  FlatBatch,
  type FlatCounterStore,
  FlatResult,
  flatStoreOf,
  fromAdjustResult,
  fromAdmitResult,
  toAdjustBatch,
  toAdmitBatch,
} from "./flat.js";
import type { CounterStore, LeaseRef } from "./store.js";

export class StoreAccess {
  readonly store: CounterStore;
  /** The store's flat capability: calls through it are synchronous. */
  readonly flat: FlatCounterStore | undefined;
  /** Store clock minus local clock, from the last answer of a store without the flat capability. */
  private skew = 0;
  private seen = false;
  private readonly probe = new FlatBatch();
  private readonly probed = new FlatResult();

  constructor(store: CounterStore) {
    this.store = store;
    this.flat = flatStoreOf(store);
  }

  /**
   * An admission. Synchronous (answers `out`) on the flat capability; otherwise a promise, and then `b` and `out`
   * must not be shared with another call until it settles (the answer is read back through `b`).
   */
  admit(b: FlatBatch, out: FlatResult): FlatResult | Promise<FlatResult> {
    const flat = this.flat;
    if (flat !== undefined) {
      flat.admitFlat(b, out);
      return out;
    }
    return this.store.admit(toAdmitBatch(b)).then((res) => {
      this.observe(res.now);
      return fromAdmitResult(b, res, out);
    });
  }

  /** An adjustment; synchronous on the flat capability, as {@link admit}. */
  adjust(b: FlatBatch, out: FlatResult): FlatResult | Promise<FlatResult> {
    const flat = this.flat;
    if (flat !== undefined) {
      flat.adjustFlat(b, out);
      return out;
    }
    return this.store.adjust(toAdjustBatch(b)).then((res) => {
      this.observe(res.now);
      return fromAdjustResult(b, res, out);
    });
  }

  /**
   * A renewal: the flat capability's (with the ticket's handle, and the engine-kept ticket `kept` when its expiry
   * is not NaN), else the contract's.
   */
  renew(lease: LeaseRef, ttlMs: number, ticketHandle: unknown, kept: { expiry: number }): number | Promise<number> {
    const flat = this.flat;
    if (flat !== undefined)
      return flat.renewFlat(lease, ttlMs, ticketHandle, Number.isNaN(kept.expiry) ? undefined : kept);
    return this.store.renew(lease, ttlMs);
  }

  /**
   * The store's time, for answers that need no store call (an admission with nothing to count). An in-process store
   * is asked (it costs nothing); a remote one answers the last time it told, moved on by the local clock since
   * (the offset is refreshed by every answer), and is asked once (one `read` of nothing) before its first answer.
   */
  now(): number | Promise<number> {
    const flat = this.flat;
    if (flat !== undefined) {
      flat.admitFlat(this.probe.reset(), this.probed);
      return this.probed.now;
    }
    if (this.seen) return Date.now() + this.skew;
    return this.store.read({ windows: [], gauges: [] }).then((res) => {
      if (typeof res?.now !== "number") {
        throw new TollgateError("STORE_DATA_CORRUPT", `[${this.store.name}] read answered no time`);
      }
      this.observe(res.now);
      return res.now;
    });
  }

  /** Records the time a store answered (remote stores: the offset to the local clock). */
  observe(storeNow: number): void {
    this.skew = storeNow - Date.now();
    this.seen = true;
  }
}
