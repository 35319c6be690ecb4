/**
 * One admission per request: a request's rate limits (requests, tokens by type, in-flight slots) and its USD budgets
 * are admitted in one atomic `store.admit` under one lease, the ticket; its settle, fail and release are one
 * `store.adjust` each and its renewal one `store.renew`, exactly once per ticket id in the store.
 *
 * The gate owns no accounting of its own: the rate-limit part is planned by `@tollgate/core` (the limiter's planner)
 * and the budget part by `@tollgate/budgets` (the budget engine); the gate puts both into one batch and reads each
 * part of the answer back with the code of its engine.
 */

import {
  type BudgetDenial,
  type BudgetRef,
  type BudgetSpec,
  type BudgetStatus,
  type BudgetsOptions,
  checkUsage,
  costOf,
  type Nano,
  type SpendRecord,
  type Usage,
} from "@tollgate/budgets";
import { ADMITTED, BudgetEngine, type BudgetPlan, type CompiledBudget, RETRY } from "@tollgate/budgets/internal";
import {
  type CounterStore,
  checkStore,
  createIdGenerator,
  type Denial,
  type Descriptor,
  type LeaseRef,
  type LimitStatus,
  type Outcome,
  type TokenAmounts,
  TollgateError,
} from "@tollgate/core";
import {
  dedupe,
  denialOf,
  FAIL,
  type FinishKind,
  FLAT_DENIED_COUNTER,
  FLAT_DENIED_TICKET,
  FlatBatch,
  FlatResult,
  fillFinish,
  fullGauge,
  gaugeRefs,
  LimitPlanner,
  type LimitRecord,
  outcomeOf,
  Planned,
  RELEASE,
  SETTLE,
  STRIDE,
  StoreAccess,
  statusesOf,
  statusesOfRecord,
  tokenAmounts,
  windowKeys,
} from "@tollgate/core/internal";

/** Options of {@link createGate}. */
export interface GateOptions {
  /** Any `CounterStore` of contract 2: `@tollgate/store-memory`, `@tollgate/store-redis`, `@tollgate/store-upstash`. */
  store: CounterStore;
  /**
   * One TTL (ms) for the in-flight slots, the token reservations, the cost holds and the ticket: a crashed process
   * frees them after this long; a running request keeps them with `ticket.renew()` (a stream: every TTL / 3).
   * @default 30000
   */
  leaseTtlMs?: number;
  /** How long the store remembers a finished ticket (ms): retries inside it are recognised. @default 60000 */
  ticketKeepMs?: number;
  /** Suggested retry delay (ms) of a denial by `max_parallel_requests` (capped by the earliest lease expiry). @default 1000 */
  parallelRetryAfterMs?: number;
  /**
   * The budget engine's options (`@tollgate/budgets`' `BudgetsOptions`, same meaning and defaults) without its
   * store, TTL and ticket options, which are the gate's. @default {} (reserve mode, the default price table)
   */
  budgets?: Omit<BudgetsOptions, "store" | "reservationTtlMs" | "ticketKeepMs">;
  /** Ticket ids for admissions that bring none; unique across processes. @default createIdGenerator() */
  createId?: () => string;
}

/** One request to admit. */
export interface GateRequest {
  /** The ticket id; unique across processes (the proxy passes its call id). @default createId() */
  id?: string;
  /** Rate-limit descriptors (`scopes.apiKey(...)`, literals, ...); each counts tokens by its `tokenType`. */
  limits: readonly Descriptor[];
  /**
   * The token estimate (see `estimateRequestTokens`, whose answer fits): input limits reserve `input`, output
   * limits `output`, total limits both, and budgets hold the cost of `input` prompt tokens. A number is a total,
   * counted as output (input 0): pass `{ input, output }` when budgets or input/output limits apply.
   */
  tokens?: number | TokenAmounts;
  /** The model: required with budgets (prices, per-model budgets); copied into spend records. */
  model?: string;
  /** Every budget that may apply (per-model budgets of other models are ignored). */
  budgets?: readonly BudgetSpec[];
  /** The request's max_tokens, for the worst-case cost (budgets' rule: else the model's max output, else a default). */
  maxTokens?: number | null;
}

/** What a ticket's settle, fail or release did (see `Outcome`): an applied one carries the cost charged. */
export type TicketOutcome = Outcome<{
  /** Cost charged to the budgets, nano-USD (0 for a release). */
  cost: Nano;
  /** The spend record written to the sink, when the request had a model (budgets were charged or checked). */
  record: SpendRecord | undefined;
}>;

/** An admitted request. Every method is one store call, applied exactly once per ticket id in the store. */
export interface Ticket {
  readonly id: string;
  readonly state: "open" | "settled" | "failed" | "released";
  /** Tokens reserved. */
  readonly tokens: TokenAmounts;
  /** Cost held on each budget, nano-USD (0 in check mode or without budgets). */
  readonly reservedCost: Nano;
  /** Output tokens the cost hold covers (capped when shrunk); null without a price or in check mode. */
  readonly maxTokens: number | null;
  /**
   * Success: charges the actual usage (tokens on each limit by its `tokenType`, cost by the price table) and frees
   * everything. `"estimate"` charges the admission's estimate (an explicit choice when a provider gave no usage).
   * @throws TollgateError `INVALID_ARGUMENT` / `INVALID_AMOUNT` without a usage of `inputTokens` and `outputTokens`.
   */
  settle(usage: Usage | "estimate"): Promise<TicketOutcome>;
  /**
   * The provider failed (LiteLLM v3's failed-call rule): the request keeps counting, `usage` (a streamed part) is
   * charged if given, every other reserved token and cost is given back, the slot is freed.
   */
  fail(usage?: Usage): Promise<TicketOutcome>;
  /** Never happened (refused after admission, never reached upstream): everything is given back and freed. */
  release(): Promise<TicketOutcome>;
  /** Extends the lease, holds and ticket (long streams). False when they already expired. */
  renew(ttlMs?: number): Promise<boolean>;
  /**
   * What another gate on the same store needs to finish this ticket ({@link Gate.restore}): JSON-safe. On an
   * in-process store a ticket with an id the gate made up is kept by this object until exported here: `toJSON()`
   * then records it in the store, so the other gate's finish is recognised (call it before handing the ticket on).
   */
  toJSON(): TicketData;
}

/** A ticket as data (see {@link Ticket.toJSON}). */
export interface TicketData {
  v: 1;
  id: string;
  tokens: TokenAmounts;
  /** The rate-limit part: windows and gauges, the numbers kept per window, window and gauge keys. */
  count: number;
  gaugeCount: number;
  nums: number[];
  keys: string[];
  /** The budget part: model, budget specs as given, the cost held, its window keys, the output cap. */
  model?: string;
  budgets?: BudgetSpec[];
  reservedCost: Nano;
  budgetKeys: string[];
  maxTokens: number | null;
  now: number;
}

export type GateAdmission =
  | {
      ok: true;
      ticket: Ticket;
      /** One status per rate limit (windows' counters, then in-flight gauges) after this request; built on access. */
      statuses: LimitStatus[];
      /** Each budget after this request (spend, held, max, period); built on access. */
      budgets: BudgetStatus[];
      /** The store's time of the decision. */
      now: number;
      /** Output tokens the cost hold covers (capped when shrunk). */
      maxTokens: number | null;
      /** True when the hold was shrunk to fit: cap the request's max_tokens to `maxTokens`. */
      shrunk: boolean;
      degraded?: "open" | "fallback";
    }
  | {
      ok: false;
      reason: "rate_limit";
      denial: Denial;
      statuses: LimitStatus[];
      now: number;
      degraded?: "open" | "fallback";
    }
  | {
      ok: false;
      reason: "budget";
      denial: BudgetDenial;
      statuses: LimitStatus[];
      now: number;
      degraded?: "open" | "fallback";
    };

export interface Gate {
  readonly store: CounterStore;
  /**
   * Admits a request in one atomic store call (more only when a budget hold is shrunk: one per retry, at most 3):
   * everything or nothing. A denial consumed nothing; when a rate limit and a budget both deny, the rate limit is
   * reported (a 429 with an exact retry time).
   * @throws TollgateError `RESERVATION_FINISHED` when `id` names a ticket the store has already finished.
   */
  admit(request: GateRequest): Promise<GateAdmission>;
  /** A ticket admitted by another gate on the same store, from its {@link Ticket.toJSON}. */
  restore(data: TicketData): Ticket;
  /** Prices and budget statuses, as the budget engine answers them. */
  readonly budgets: BudgetEngine;
}

const NO_NUMS: number[] = [];
const NO_KEYS: string[] = [];
const NONE: readonly Descriptor[] = [];
const DUPLICATE: { status: "duplicate" } = Object.freeze({ status: "duplicate" });
const EXPIRED: { status: "expired" } = Object.freeze({ status: "expired" });
const RELEASED: TicketOutcome = Object.freeze({ status: "applied", cost: 0, record: undefined });
const SHRINK_ATTEMPTS = 3;

function bad(message: string): TollgateError {
  return new TollgateError("INVALID_ARGUMENT", message);
}

function positive(value: unknown, fallback: number, what: string): number {
  const n = value ?? fallback;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n <= 0) {
    throw bad(`${what} must be a positive integer, got ${String(value)}`);
  }
  return n;
}

/**
 * The usage of a settle: OpenAI's convention (`inputTokens` includes cached reads). Rate limits count input tokens
 * as LiteLLM does, prompt tokens minus cached ones.
 */
function usageTokens(usage: Usage): TokenAmounts {
  checkUsage(usage);
  if (usage.outputTokens === undefined) {
    throw new TollgateError(
      "INVALID_AMOUNT",
      "usage.outputTokens is required (0 is a valid count): a missing count would charge nothing",
    );
  }
  const cached = usage.cachedInputTokens ?? 0;
  const input = usage.inputTokens - (typeof cached === "number" ? cached : 0);
  return tokenAmounts({ input: Math.max(0, input), output: usage.outputTokens }, "usage");
}

/** An admitted request: its ticket, and (one object per request) its admission. */
class GateTicket implements Ticket, LimitRecord {
  state: "open" | "settled" | "failed" | "released" = "open";
  readonly ok = true as const;
  // the rate-limit part (LimitRecord)
  count = 0;
  gaugeCount = 0;
  nums: number[] = NO_NUMS;
  keys: string[] = NO_KEYS;
  handles: unknown[] | undefined = undefined;
  input = 0;
  output = 0;
  descriptors: readonly Descriptor[] = NONE;
  enforced: boolean[] | undefined = undefined;
  now = 0;
  // the budget part
  plan: BudgetPlan | undefined = undefined;
  /** Spend and held per budget after admission. */
  budgetNums: number[] = NO_NUMS;
  reservedCost: Nano = 0;
  maxTokens: number | null = null;
  shrunk = false;
  // the ticket in the store
  /** False when the request had nothing to count: no store call at admission, none at settle. */
  stored = false;
  ticketHandle: unknown = undefined;
  /** A ticket the gate keeps itself (in-process store, an id of ours, not exported): its expiry; else NaN. */
  expiry = Number.NaN;
  degraded: "open" | "fallback" | undefined = undefined;
  model: string | undefined = undefined;
  private lease: LeaseRef | undefined = undefined;
  private limitStatuses: LimitStatus[] | undefined = undefined;
  private refs: BudgetRef[] | undefined = undefined;

  constructor(
    private readonly gate: GateEngine,
    readonly id: string,
  ) {}

  get ticket(): Ticket {
    return this;
  }

  get tokens(): TokenAmounts {
    return { input: this.input, output: this.output };
  }

  get statuses(): LimitStatus[] {
    this.limitStatuses ??= this.gate.limitStatuses(this);
    return this.limitStatuses;
  }

  get budgets(): BudgetStatus[] {
    return this.plan === undefined ? [] : this.gate.budgets.statusesOf(this.plan, this.budgetNums);
  }

  /** For spend records (the budget engine's `recordCharge`). */
  get requestId(): string {
    return this.id;
  }

  get list(): readonly CompiledBudget[] {
    return this.plan?.list ?? [];
  }

  /** The budgets charged (spend records name them). */
  get budgetRefs(): BudgetRef[] {
    this.refs ??= this.list.map((b) => b.ref);
    return this.refs;
  }

  /** The lease of the ticket: in-flight gauges, cost holds and (for stores that split batches) every window. */
  leaseOf(full: boolean): LeaseRef {
    if (this.lease !== undefined && (!full || this.lease.windows !== undefined)) return this.lease;
    const plan = this.plan;
    const holds: LeaseRef["holds"] = [];
    if (plan !== undefined && plan.hold > 0) for (const key of plan.keys) holds.push({ key, name: "spend" });
    const lease: LeaseRef = { id: this.id, gauges: gaugeRefs(this), holds };
    if (full) lease.windows = plan === undefined ? windowKeys(this) : [...windowKeys(this), ...plan.keys];
    this.lease = lease;
    return lease;
  }

  settle(usage: Usage | "estimate"): Promise<TicketOutcome> {
    return this.gate.finish(this, SETTLE, usage);
  }

  fail(usage?: Usage): Promise<TicketOutcome> {
    return this.gate.finish(this, FAIL, usage);
  }

  release(): Promise<TicketOutcome> {
    return this.gate.finish(this, RELEASE, undefined);
  }

  renew(ttlMs?: number): Promise<boolean> {
    return this.gate.renew(this, ttlMs);
  }

  toJSON(): TicketData {
    this.gate.export(this);
    const data: TicketData = {
      v: 1,
      id: this.id,
      tokens: { input: this.input, output: this.output },
      count: this.count,
      gaugeCount: this.gaugeCount,
      nums: this.nums,
      keys: this.keys,
      reservedCost: this.reservedCost,
      budgetKeys: this.plan?.keys ?? [],
      maxTokens: this.maxTokens,
      now: this.now,
    };
    if (this.model !== undefined) data.model = this.model;
    if (this.plan !== undefined) data.budgets = this.plan.list.map((b) => b.source);
    return data;
  }
}

class GateEngine implements Gate {
  readonly store: CounterStore;
  readonly budgets: BudgetEngine;
  private readonly access: StoreAccess;
  private readonly planner = new LimitPlanner();
  private readonly leaseTtlMs: number;
  private readonly keepMs: number;
  private readonly parallelRetryAfterMs: number;
  private readonly createId: () => string;
  /** Scratch of the flat path (synchronous from filling to reading); calls that await get fresh ones. */
  private readonly scratch = new FlatBatch();
  private readonly answer = new FlatResult();
  private readonly planned = new Planned();

  constructor(options: GateOptions) {
    if (typeof options !== "object" || options === null) {
      throw bad("createGate needs options with a store: createGate({ store })");
    }
    checkStore(options.store, "store");
    this.store = options.store;
    this.access = new StoreAccess(options.store);
    this.leaseTtlMs = positive(options.leaseTtlMs, 30_000, "leaseTtlMs");
    this.keepMs = positive(options.ticketKeepMs, 60_000, "ticketKeepMs");
    const retry = options.parallelRetryAfterMs ?? 1000;
    if (typeof retry !== "number" || !Number.isSafeInteger(retry) || retry < 0) {
      throw bad(
        `parallelRetryAfterMs must be a non-negative integer (ms), got ${String(options.parallelRetryAfterMs)}`,
      );
    }
    this.parallelRetryAfterMs = retry;
    if (options.createId !== undefined && typeof options.createId !== "function") {
      throw bad("createId must be a function returning unique ids");
    }
    this.createId = options.createId ?? createIdGenerator();
    const budgets = options.budgets ?? {};
    if (typeof budgets !== "object" || budgets === null) throw bad("budgets must be an object of budget options");
    this.budgets = new BudgetEngine({
      ...budgets,
      store: options.store,
      reservationTtlMs: this.leaseTtlMs,
      ticketKeepMs: this.keepMs,
    });
  }

  async admit(req: GateRequest): Promise<GateAdmission> {
    if (typeof req !== "object" || req === null) throw bad(`admit needs a request { limits, ... }, got ${String(req)}`);
    if (!Array.isArray(req.limits)) {
      throw bad("limits must be an array of descriptors (possibly empty; wrap a single descriptor in [ ])");
    }
    const given = req.id;
    // an id of ours needs no check (and checking would flatten the fresh string for nothing)
    const id = given === undefined ? this.createId() : given;
    if (given !== undefined && (typeof id !== "string" || id.length === 0 || id.includes("{") || id.includes("}"))) {
      throw bad(`the ticket id must be a non-empty string without { or }, got ${JSON.stringify(id)}`);
    }
    let { input, output } = tokenAmounts(req.tokens, "tokens");
    if (req.budgets !== undefined && !Array.isArray(req.budgets)) {
      throw bad("budgets must be an array of budget specs (possibly empty)");
    }
    let plan: BudgetPlan | undefined;
    if (req.model !== undefined || (req.budgets !== undefined && req.budgets.length > 0)) {
      plan = this.budgets.plan({
        requestId: id,
        model: req.model as string, // checked by plan()
        budgets: (req.budgets ?? []) as BudgetSpec[],
        inputTokens: input,
        maxTokens: req.maxTokens ?? null,
      });
    }
    const ds = dedupe(req.limits);
    const flat = this.access.flat !== undefined;
    let enforced: boolean[] | undefined;
    for (let attempt = 0; ; attempt++) {
      const own = flat && !this.planner.filling;
      const b = own ? this.scratch.reset() : new FlatBatch();
      const p = own ? this.planned : new Planned();
      this.planner.fill(b, ds, input, output, p, enforced);
      enforced ??= p.enforced ?? ds.map(() => true); // a retry keeps the conditions' answers of the first fill
      if (plan !== undefined) this.budgets.fillAdmit(b, plan);
      const t = new GateTicket(this, id);
      t.model = req.model;
      if (b.windowCount === 0 && b.gaugeCount === 0) {
        // nothing to count: no ticket in the store; settle still records the spend of a priced model
        t.now = await this.access.now();
        this.keep(t, b, undefined, p, ds, input, output, plan, false);
        return t;
      }
      b.leaseId = id;
      b.leaseTtlMs = this.leaseTtlMs;
      b.ticket = true;
      // A fresh id of ours on an in-process store: the ticket keeps itself (no id index on the hot path) until
      // toJSON() exports it. An id from the caller is recorded: it may be named again (a late admission is refused).
      b.ticketPrivate = flat && req.id === undefined;
      const out = own ? this.answer : new FlatResult();
      const r = flat ? (this.access.admit(b, out) as FlatResult) : await this.access.admit(b, out);
      if (r.admitted) {
        if (plan !== undefined) this.budgets.decide(plan, r); // records the clock and the handles
        this.keep(t, b, r, p, ds, input, output, plan, flat);
        if (b.ticketPrivate) t.expiry = r.now + this.leaseTtlMs;
        return t;
      }
      if (r.denied === FLAT_DENIED_TICKET) {
        throw new TollgateError(
          "RESERVATION_FINISHED",
          `ticket ${id} was already settled or released: a ticket id admits one request`,
        );
      }
      const inLimits = r.denied !== FLAT_DENIED_COUNTER || r.deniedWindow < p.w0 + p.wn;
      const gauge = inLimits ? -1 : fullGauge(b, r, p);
      if (inLimits || gauge >= 0 || plan === undefined) {
        if (plan !== undefined) this.budgets.observe(r.now, plan.local);
        return this.limitDenial(b, r, p, inLimits ? undefined : gauge);
      }
      const d = this.budgets.decide(plan, r);
      if (d === RETRY && attempt < SHRINK_ATTEMPTS) {
        // the request's max_tokens is capped to what fits: so is its output reservation
        if (plan.maxTokens !== null && output > plan.maxTokens) output = plan.maxTokens;
        continue;
      }
      const statuses = statusesOf(b, r, p, r.now, false);
      const denial = d === RETRY || d === ADMITTED ? undefined : d;
      if (denial === undefined) throw new TollgateError("STORE_DATA_CORRUPT", "budget decision without a denial");
      const outcome: GateAdmission = { ok: false, reason: "budget", denial, statuses, now: r.now };
      if (r.degraded !== undefined) outcome.degraded = r.degraded;
      return outcome;
    }
  }

  /** A rate-limit denial: the store's first denying limit, or (when a budget came first) the full gauge `gauge`. */
  private limitDenial(b: FlatBatch, r: FlatResult, p: Planned, gauge: number | undefined): GateAdmission {
    const statuses = statusesOf(b, r, p, r.now, false);
    const c = gauge === undefined && r.denied === FLAT_DENIED_COUNTER ? r.deniedIndex : -1;
    const g = gauge ?? r.deniedIndex - p.g0;
    const denial = denialOf(b, r, p, statuses, r.now, c, g, this.parallelRetryAfterMs);
    const out: GateAdmission = { ok: false, reason: "rate_limit", denial, statuses, now: r.now };
    if (r.degraded !== undefined) out.degraded = r.degraded;
    return out;
  }

  private keep(
    t: GateTicket,
    b: FlatBatch,
    r: FlatResult | undefined,
    p: Planned,
    ds: readonly Descriptor[],
    input: number,
    output: number,
    plan: BudgetPlan | undefined,
    flat: boolean,
  ): void {
    if (r !== undefined) {
      this.planner.keep(t, b, r, p, ds, input, output, flat);
      t.stored = true;
      t.ticketHandle = r.ticketHandle;
      t.degraded = r.degraded;
    } else {
      t.input = input;
      t.output = output;
      t.descriptors = ds;
    }
    if (plan !== undefined) {
      t.plan = plan;
      t.maxTokens = plan.maxTokens;
      t.shrunk = plan.shrunk;
      const n = plan.list.length;
      if (r !== undefined && n > 0) {
        t.reservedCost = plan.hold;
        const nums: number[] = new Array(2 * n);
        for (let i = 0; i < n; i++) {
          nums[2 * i] = r.values[plan.c0 + i]!;
          nums[2 * i + 1] = r.held[plan.c0 + i]!;
        }
        t.budgetNums = nums;
      }
    }
  }

  /** @internal */
  limitStatuses(t: GateTicket): LimitStatus[] {
    return statusesOfRecord(this.planner, t);
  }

  /** @internal One adjustment that finishes the ticket. */
  finish(t: GateTicket, kind: FinishKind, usage: Usage | "estimate" | undefined): Promise<TicketOutcome> {
    try {
      const out = this.finishNow(t, kind, usage);
      return out instanceof Promise ? out : Promise.resolve(out);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private finishNow(
    t: GateTicket,
    kind: FinishKind,
    usage: Usage | "estimate" | undefined,
  ): TicketOutcome | Promise<TicketOutcome> {
    let input = 0;
    let output = 0;
    let charged: Usage | undefined;
    if (kind === SETTLE && usage === "estimate") {
      input = t.input;
      output = t.output;
      charged = { inputTokens: t.input, outputTokens: t.output };
    } else if (kind === SETTLE || (kind === FAIL && usage !== undefined)) {
      if (usage === "estimate") throw bad('fail() takes a usage or nothing, not "estimate"');
      ({ input, output } = usageTokens(usage as Usage));
      charged = usage;
    }
    const plan = t.plan;
    let cost = 0;
    if (charged !== undefined && plan?.price !== undefined) cost = costOf(plan.price, charged);
    if (t.state !== "open") return DUPLICATE;
    const state = kind === SETTLE ? "settled" : kind === FAIL ? "failed" : "released";
    if (!t.stored) {
      t.state = state;
      return this.applied(t, kind, charged, cost, undefined, 0, plan === undefined ? t.now : this.budgets.clock());
    }
    const flat = this.access.flat !== undefined;
    const own = flat && !this.planner.filling;
    const b = own ? this.scratch.reset() : new FlatBatch();
    fillFinish(b, t, kind, input, output);
    let c0 = -1;
    let time = t.now;
    let local: number | undefined; // the local clock behind `time`, for the offset to the store's answer
    if (plan !== undefined && plan.list.length > 0 && cost > 0) {
      time = this.budgets.clock();
      local = this.budgets.lastLocal;
      c0 = this.budgets.fillCharge(b, plan.list, time, cost);
    }
    b.releaseLease(t.leaseOf(!flat), t.handles, t.count);
    if (plan !== undefined && flat) this.budgets.holdHints(b, plan.list, plan.hold > 0);
    b.finishTicket(t.id, kind === RELEASE ? "release" : "settle", this.keepMs, t.ticketHandle, t.expiry);
    b.readBack = c0 >= 0; // the spend after the charge, for alerts
    t.state = state; // claimed before any await: a concurrent second call answers `duplicate`
    if (flat) {
      let r: FlatResult;
      try {
        r = this.access.adjust(b, own ? this.answer : new FlatResult()) as FlatResult;
      } catch (err) {
        t.state = "open"; // nothing was applied (adjust is atomic): the caller may retry
        throw err;
      }
      return this.finished(t, kind, charged, cost, r, c0, time, local);
    }
    return (this.access.adjust(b, new FlatResult()) as Promise<FlatResult>).then(
      (r) => this.finished(t, kind, charged, cost, r, c0, time, local),
      (err: unknown) => {
        // the call may still be applied by the store: a retry is recognised by the ticket and applies once
        t.state = "open";
        throw err;
      },
    );
  }

  /** The outcome of a finishing adjustment (`c0`: the budget charge's first counter, -1 for none). */
  private finished(
    t: GateTicket,
    kind: FinishKind,
    charged: Usage | undefined,
    cost: Nano,
    r: FlatResult,
    c0: number,
    time: number,
    local: number | undefined,
  ): TicketOutcome | Promise<TicketOutcome> {
    if (t.plan !== undefined) this.budgets.observe(r.now, local);
    const o = outcomeOf(r.ticket, kind === RELEASE);
    if (o.status === "duplicate") return DUPLICATE;
    if (o.status === "expired") return EXPIRED;
    return c0 >= 0
      ? this.applied(t, kind, charged, cost, r, c0, time)
      : this.applied(t, kind, charged, cost, undefined, 0, r.now);
  }

  /** An applied outcome: a release's, or a charge's with its spend record (alerts and the sink on the way). */
  private applied(
    t: GateTicket,
    kind: FinishKind,
    charged: Usage | undefined,
    cost: Nano,
    r: FlatResult | undefined,
    c0: number,
    time: number,
  ): TicketOutcome | Promise<TicketOutcome> {
    const plan = t.plan;
    if (kind === RELEASE) return RELEASED;
    if (plan === undefined || charged === undefined) return { status: "applied", cost, record: undefined };
    const result = this.budgets.recordCharge(t, r, c0, charged, cost, time);
    if (result instanceof Promise) return result.then((x) => ({ status: "applied", cost, record: x.record }));
    return { status: "applied", cost, record: result.record };
  }

  /** @internal */
  async renew(t: GateTicket, ttlMs: number | undefined): Promise<boolean> {
    const ttl = positive(ttlMs, this.leaseTtlMs, "ttlMs");
    if (t.state !== "open") return false;
    if (!t.stored) return true; // nothing held
    return (await this.access.renew(t.leaseOf(true), ttl, t.ticketHandle, t)) > 0;
  }

  /**
   * @internal Before a ticket the gate kept itself leaves as data (toJSON): record it in the in-process store under
   * its id, open or finished, so that the gate that restores it is recognised.
   */
  export(t: GateTicket): void {
    const flat = this.access.flat;
    if (flat === undefined || Number.isNaN(t.expiry)) return;
    t.ticketHandle = flat.recordTicket(t.id, t.state !== "open", t.expiry, this.keepMs);
    t.expiry = Number.NaN;
  }

  restore(data: TicketData): Ticket {
    if (typeof data !== "object" || data === null || data.v !== 1 || typeof data.id !== "string") {
      throw bad("restore needs the data of a ticket (ticket.toJSON())");
    }
    const { count, gaugeCount, nums, keys } = data;
    if (
      !Number.isSafeInteger(count) ||
      !Number.isSafeInteger(gaugeCount) ||
      !Array.isArray(nums) ||
      !Array.isArray(keys) ||
      nums.length !== count * STRIDE + 2 * gaugeCount ||
      keys.length !== count + gaugeCount ||
      !nums.every((n) => typeof n === "number") ||
      !keys.every((k) => typeof k === "string" && k.length > 0)
    ) {
      throw bad("restore: the ticket's rate-limit part is malformed");
    }
    const { input, output } = tokenAmounts(data.tokens, "tokens");
    const t = new GateTicket(this, data.id);
    t.count = count;
    t.gaugeCount = gaugeCount;
    t.nums = nums;
    t.keys = keys;
    t.input = input;
    t.output = output;
    t.now = data.now;
    t.stored = count + gaugeCount > 0 || (data.budgetKeys?.length ?? 0) > 0;
    t.model = data.model;
    t.maxTokens = data.maxTokens ?? null;
    if (data.model !== undefined) {
      const plan = this.budgets.plan({
        requestId: data.id,
        model: data.model,
        budgets: data.budgets ?? [],
        inputTokens: input,
        maxTokens: data.maxTokens ?? null,
      });
      if (!Array.isArray(data.budgetKeys) || data.budgetKeys.length !== plan.list.length) {
        throw bad("restore: the ticket's budget part does not match its budgets");
      }
      plan.keys = data.budgetKeys;
      plan.hold = data.reservedCost;
      t.plan = plan;
      t.reservedCost = data.reservedCost;
    }
    return t;
  }
}

/** Creates a {@link Gate}. */
export function createGate(options: GateOptions): Gate {
  return new GateEngine(options);
}
