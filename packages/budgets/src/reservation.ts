import { type LeaseRef, TollgateError } from "@tollgate/core";
import type { CompiledBudget } from "./compile.js";
import type { Nano } from "./money.js";
import { checkUsage, costOf, type ModelPrice, type Usage } from "./pricing.js";
import type { BudgetRef, SpendRecord } from "./types.js";

export interface SettleResult {
  /** Exact cost in nano-USD. */
  cost: Nano;
  record: SpendRecord;
  /** Spend of each budget in its current period after the charge (same order as `record.scopes`). */
  spend: Nano[];
}

/** An admitted request's hold on its budgets. */
export interface Reservation {
  readonly requestId: string;
  readonly model: string;
  /** Lease id of the holds (absent in check mode or when nothing is held). */
  readonly leaseId: string | undefined;
  /** Held worst-case cost per budget, nano-USD. */
  readonly reserved: Nano;
  readonly budgets: BudgetRef[];
  /** `open` until settled or released. */
  readonly state: "open" | "settled" | "released";
  /**
   * Charges the actual cost to every budget's current period and releases the holds, in one atomic store call.
   * Idempotent: a second call returns the first result and changes nothing.
   * @throws TollgateError `RESERVATION_FINISHED` after `release()`.
   */
  settle(usage: Usage): Promise<SettleResult>;
  /** Releases the holds without charging (the call failed). Idempotent; a no-op after `settle`. */
  release(): Promise<void>;
  /** Extends the holds (long streams). Returns false when the lease has already expired. */
  renew(ttlMs?: number): Promise<boolean>;
}

/** What a reservation needs from its engine. */
export interface ReservationHost {
  /** Default lease TTL for `renew()`. */
  readonly ttlMs: number;
  /** One atomic adjust: add `cost` to every budget's current period and release the lease. */
  charge(r: BudgetReservation, usage: Usage, cost: Nano): SettleResult | Promise<SettleResult>;
  release(lease: LeaseRef): Promise<void>;
  renew(lease: LeaseRef, ttlMs: number): Promise<boolean>;
}

/** @internal The engine's reservation: state machine open -> settled | released, idempotent transitions. */
export class BudgetReservation implements Reservation {
  readonly requestId: string;
  readonly model: string;
  readonly leaseId: string | undefined;
  state: "open" | "settled" | "released" = "open";
  private settling: Promise<SettleResult> | undefined;
  private releasing: Promise<void> | undefined;
  private refs: BudgetRef[] | undefined;

  constructor(
    private readonly engine: ReservationHost,
    req: { requestId: string; model: string },
    private readonly price: ModelPrice | undefined,
    readonly list: CompiledBudget[],
    readonly lease: LeaseRef | undefined,
    readonly reserved: Nano,
  ) {
    this.requestId = req.requestId;
    this.model = req.model;
    this.leaseId = lease?.id;
  }

  get budgets(): BudgetRef[] {
    if (this.refs === undefined) this.refs = this.list.map((b) => b.ref);
    return this.refs;
  }

  settle(usage: Usage): Promise<SettleResult> {
    if (this.settling !== undefined) return this.settling;
    if (this.state === "released" || this.releasing !== undefined) {
      return Promise.reject(
        new TollgateError("RESERVATION_FINISHED", `reservation of request ${this.requestId} was already released`),
      );
    }
    let cost: Nano;
    try {
      if (this.price !== undefined) cost = costOf(this.price, usage);
      else {
        checkUsage(usage); // an unknown model charges nothing, but a settle without usage is still an error
        cost = 0;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    let out: SettleResult | Promise<SettleResult>;
    try {
      out = this.engine.charge(this, usage, cost);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!(out instanceof Promise)) {
      this.state = "settled";
      this.settling = Promise.resolve(out);
      return this.settling;
    }
    const p = out.then(
      (result) => {
        this.state = "settled";
        return result;
      },
      (err: unknown) => {
        // The store call is atomic: nothing was applied, so a later settle may retry.
        this.settling = undefined;
        throw err;
      },
    );
    this.settling = p;
    return p;
  }

  release(): Promise<void> {
    if (this.releasing !== undefined) return this.releasing;
    if (this.settling !== undefined || this.state !== "open") return Promise.resolve();
    if (this.lease === undefined) {
      this.state = "released";
      return Promise.resolve();
    }
    const p = this.engine.release(this.lease).then(
      () => {
        this.state = "released";
      },
      (err: unknown) => {
        this.releasing = undefined;
        throw err;
      },
    );
    this.releasing = p;
    return p;
  }

  async renew(ttlMs: number = this.engine.ttlMs): Promise<boolean> {
    if (this.state !== "open") return false;
    if (this.lease === undefined) return true;
    return this.engine.renew(this.lease, ttlMs);
  }
}
