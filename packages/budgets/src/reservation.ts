import type { LeaseRef, Outcome } from "@tollgate/core";
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

/**
 * An admitted request's hold on its budgets. Its settle and release are one store call each, applied exactly once
 * per reservation in the store (its ticket), whatever the retries and from whichever process.
 */
export interface Reservation {
  readonly requestId: string;
  readonly model: string;
  /** Lease (and ticket) id of the reservation (absent when no budget applied). */
  readonly leaseId: string | undefined;
  /** Held worst-case cost per budget, nano-USD (0 in check mode). */
  readonly reserved: Nano;
  readonly budgets: BudgetRef[];
  /** `open` until settled or released. */
  readonly state: "open" | "settled" | "released";
  /**
   * Charges the actual cost to every budget's current period and releases the holds, in one atomic store call.
   * `applied` carries the cost, the spend record and the spend after the charge; a second settle, or a settle after
   * `release()`, is `duplicate` and changes nothing.
   * @throws TollgateError `INVALID_ARGUMENT` / `INVALID_AMOUNT` for a missing or bad usage (never a silent $0).
   */
  settle(usage: Usage): Promise<Outcome<SettleResult>>;
  /**
   * Releases the holds without charging (the call did not run). `duplicate` after a settle or a release,
   * `expired` when the store no longer knows the reservation (its lease expired: nothing to undo).
   */
  release(): Promise<Outcome>;
  /** Extends the holds (long streams). Returns false when the lease has already expired. */
  renew(ttlMs?: number): Promise<boolean>;
}

/** What a reservation needs from its engine. */
export interface ReservationHost {
  /** Default lease TTL for `renew()`. */
  readonly ttlMs: number;
  /** One atomic adjust: add `cost` to every budget's current period, release the lease, finish the ticket. */
  charge(r: BudgetReservation, usage: Usage, cost: Nano): Outcome<SettleResult> | Promise<Outcome<SettleResult>>;
  /** One atomic adjust: release the lease and finish the ticket. */
  release(r: BudgetReservation): Outcome | Promise<Outcome>;
  renew(r: BudgetReservation, ttlMs: number): Promise<boolean>;
}

const DUPLICATE: { status: "duplicate" } = Object.freeze({ status: "duplicate" });

/** @internal The engine's reservation: open -> settled | released, claimed before the store call. */
export class BudgetReservation implements Reservation {
  readonly requestId: string;
  readonly model: string;
  readonly leaseId: string | undefined;
  state: "open" | "settled" | "released" = "open";
  private refs: BudgetRef[] | undefined;

  constructor(
    private readonly engine: ReservationHost,
    req: { requestId: string; model: string },
    private readonly price: ModelPrice | undefined,
    readonly list: CompiledBudget[],
    readonly lease: LeaseRef | undefined,
    readonly reserved: Nano,
    /** The store's handle of the ticket (in-process stores), or undefined. */
    readonly ticketHandle: unknown,
    /** A ticket the reservation keeps itself (in-process stores): its expiry in the store's time; else NaN. */
    public expiry: number,
  ) {
    this.requestId = req.requestId;
    this.model = req.model;
    this.leaseId = lease?.id;
  }

  get budgets(): BudgetRef[] {
    if (this.refs === undefined) this.refs = this.list.map((b) => b.ref);
    return this.refs;
  }

  /** The same, as spend records name them. */
  get budgetRefs(): BudgetRef[] {
    return this.budgets;
  }

  settle(usage: Usage): Promise<Outcome<SettleResult>> {
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
    if (this.state !== "open") return Promise.resolve(DUPLICATE);
    this.state = "settled"; // claimed before any await: a concurrent second call is a duplicate
    try {
      return Promise.resolve(this.engine.charge(this, usage, cost)).catch((err: unknown) => {
        // The call may still be applied by the store: a retry is recognised by the ticket and applies once.
        this.state = "open";
        throw err;
      });
    } catch (err) {
      this.state = "open";
      return Promise.reject(err);
    }
  }

  release(): Promise<Outcome> {
    if (this.state !== "open") return Promise.resolve(DUPLICATE);
    this.state = "released";
    try {
      return Promise.resolve(this.engine.release(this)).catch((err: unknown) => {
        this.state = "open";
        throw err;
      });
    } catch (err) {
      this.state = "open";
      return Promise.reject(err);
    }
  }

  async renew(ttlMs: number = this.engine.ttlMs): Promise<boolean> {
    if (this.state !== "open") return false;
    if (this.lease === undefined) return true;
    return this.engine.renew(this, ttlMs);
  }
}
