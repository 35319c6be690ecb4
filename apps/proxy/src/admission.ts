/**
 * The one admission of a proxied request, behind the interface of `@tollgate/gate` (docs/design/gate.md):
 * `admit({ id, limits, tokens, model, budgets, maxTokens })` → a ticket with `settle` / `fail` / `release` /
 * `renew`, each at most once per ticket.
 *
 * TEMPORARY implementation until `packages/gate` lands: the limiter of `@tollgate/core` and the budgets of
 * `@tollgate/budgets` on one store (two store calls instead of one; a budget denial releases the limit admission).
 * The proxy uses only the types and `createAdmission` below, so swapping in `createGate` changes this file only.
 */
import {
  type BudgetDenial,
  type Reservation as BudgetReservation,
  type BudgetSpec,
  createBudgets,
  type Nano,
  type PriceTable,
  type SpendRecord,
  type Usage,
} from "@tollgate/budgets";
import {
  type CounterStore,
  createLimiter,
  type Denial,
  type Descriptor,
  type LimitStatus,
  type Reservation,
  TollgateError,
} from "@tollgate/core";

export type TokenType = "input" | "output" | "total";

export interface AdmitRequest {
  /** Ticket id: the proxy's call id. */
  id: string;
  limits: Descriptor[];
  tokens: { input: number; output: number };
  model: string;
  budgets: BudgetSpec[];
  maxTokens: number | null;
}

export type TicketOutcome =
  | { status: "applied"; cost: Nano; record: SpendRecord | undefined }
  | { status: "duplicate" }
  | { status: "expired" };

export interface Ticket {
  readonly id: string;
  readonly state: "open" | "settled" | "failed" | "released";
  readonly maxTokens: number | null;
  settle(usage: Usage | "estimate"): Promise<TicketOutcome>;
  fail(usage?: Usage): Promise<TicketOutcome>;
  release(): Promise<TicketOutcome>;
  renew(ttlMs?: number): Promise<boolean>;
}

export type GateAdmission =
  | {
      ok: true;
      ticket: Ticket;
      statuses: LimitStatus[];
      now: number;
      maxTokens: number | null;
      shrunk: boolean;
      degraded?: "open" | "fallback";
    }
  | { ok: false; reason: "rate_limit"; denial: Denial; statuses: LimitStatus[]; now: number; degraded?: string }
  | { ok: false; reason: "budget"; denial: BudgetDenial; statuses: LimitStatus[]; now: number; degraded?: string };

/** What the proxy needs from the gate. */
export interface Gate {
  admit(req: AdmitRequest): Promise<GateAdmission>;
}

export interface AdmissionOptions {
  store: CounterStore;
  leaseTtlMs: number;
  tokenType: TokenType;
  mode: "reserve" | "check";
  shrink: boolean;
  prices: PriceTable;
}

/** Creates the proxy's gate. */
export function createAdmission(options: AdmissionOptions): Gate {
  return new TemporaryGate(options);
}

function tokensOf(t: { input: number; output: number }, type: TokenType): number {
  return type === "input" ? t.input : type === "output" ? t.output : t.input + t.output;
}

function usageTokens(u: Usage, type: TokenType): number {
  const input = u.inputTokens - (u.cachedInputTokens ?? 0);
  const output = u.outputTokens ?? 0;
  return type === "input" ? input : type === "output" ? output : input + output;
}

class TemporaryGate implements Gate {
  private readonly limiter;
  private readonly budgets;

  constructor(private readonly o: AdmissionOptions) {
    this.limiter = createLimiter({ store: o.store, leaseTtlMs: o.leaseTtlMs });
    this.budgets = createBudgets({
      store: o.store,
      mode: o.mode,
      prices: o.prices,
      unknownModel: "allow",
      shrink: o.shrink,
      reservationTtlMs: o.leaseTtlMs,
    });
  }

  async admit(req: AdmitRequest): Promise<GateAdmission> {
    const tokens = Math.max(tokensOf(req.tokens, this.o.tokenType), 0);
    const a = await this.limiter.admit(req.limits, { tokens });
    if (!a.ok) {
      return { ok: false, reason: "rate_limit", denial: a.denial, statuses: a.statuses, now: a.now };
    }
    let budget: BudgetReservation | undefined;
    let maxTokens = req.maxTokens;
    let shrunk = false;
    if (req.budgets.length > 0) {
      let r: Awaited<ReturnType<typeof this.budgets.reserve>>;
      try {
        r = await this.budgets.reserve({
          requestId: req.id,
          model: req.model,
          budgets: req.budgets,
          inputTokens: req.tokens.input,
          maxTokens: req.maxTokens,
        });
      } catch (err) {
        await this.limiter.release(a.reservation).catch(() => {});
        throw err;
      }
      if (!r.ok) {
        await this.limiter.release(a.reservation);
        return { ok: false, reason: "budget", denial: r.denial, statuses: a.statuses, now: a.now };
      }
      budget = r.reservation;
      if (r.shrunk) {
        shrunk = true;
        maxTokens = r.maxTokens;
      }
    }
    const ticket = new TemporaryTicket(req.id, this, a.reservation, budget, tokens, maxTokens);
    return { ok: true, ticket, statuses: a.statuses, now: a.now, maxTokens, shrunk };
  }

  async finish(
    t: TemporaryTicket,
    kind: "settle" | "fail" | "release",
    usage: Usage | undefined,
  ): Promise<TicketOutcome> {
    const type = this.o.tokenType;
    if (kind === "release") {
      await Promise.all([this.limiter.release(t.limit), t.budget?.release()]);
      return { status: "applied", cost: 0, record: undefined };
    }
    const tokens = usage === undefined ? 0 : usageTokens(usage, type);
    // fail: the request stays counted (LiteLLM), tokens and cost are refunded except what was used
    const [, settled] = await Promise.all([
      this.limiter.settle(t.limit, { tokens }),
      t.budget === undefined ? undefined : usage === undefined ? t.budget.release() : t.budget.settle(usage),
    ]);
    const s = settled as { cost: Nano; record: SpendRecord } | undefined;
    return { status: "applied", cost: s?.cost ?? 0, record: s?.record };
  }

  renew(t: TemporaryTicket, ttlMs?: number): Promise<boolean> {
    return Promise.all([this.limiter.renew(t.limit), t.budget?.renew(ttlMs) ?? true]).then(([a, b]) => a || b);
  }
}

class TemporaryTicket implements Ticket {
  state: Ticket["state"] = "open";

  constructor(
    readonly id: string,
    private readonly gate: TemporaryGate,
    readonly limit: Reservation,
    readonly budget: BudgetReservation | undefined,
    readonly reservedTokens: number,
    readonly maxTokens: number | null,
  ) {}

  settle(usage: Usage | "estimate"): Promise<TicketOutcome> {
    if (usage !== "estimate" && (usage === undefined || usage.inputTokens === undefined)) {
      return Promise.reject(new TollgateError("INVALID_ARGUMENT", "settle needs a usage with inputTokens"));
    }
    if (this.state !== "open") return Promise.resolve({ status: "duplicate" });
    this.state = "settled";
    const u: Usage = usage === "estimate" ? { inputTokens: this.reservedTokens, outputTokens: 0 } : (usage as Usage);
    return this.gate.finish(this, "settle", u);
  }

  fail(usage?: Usage): Promise<TicketOutcome> {
    if (this.state !== "open") return Promise.resolve({ status: "duplicate" });
    this.state = "failed";
    return this.gate.finish(this, "fail", usage);
  }

  release(): Promise<TicketOutcome> {
    if (this.state !== "open") return Promise.resolve({ status: "duplicate" });
    this.state = "released";
    return this.gate.finish(this, "release", undefined);
  }

  renew(ttlMs?: number): Promise<boolean> {
    if (this.state !== "open") return Promise.resolve(false);
    return this.gate.renew(this, ttlMs);
  }
}
