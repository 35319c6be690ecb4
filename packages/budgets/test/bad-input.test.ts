import { TollgateError } from "@tollgate/core";
import { createMemoryStore, type MemoryStore } from "@tollgate/store-memory";
import { beforeEach, describe, expect, it } from "vitest";
import {
  type BudgetEvent,
  type BudgetSpec,
  type Budgets,
  type BudgetsOptions,
  baseKeyOf,
  budgetErrorBody,
  checkTimeZone,
  checkUsage,
  compileBudget,
  compilePrice,
  costOf,
  createBudgets,
  createPriceBook,
  createSchedule,
  formatBudgetExceeded,
  formatUsd,
  litellmBudgets,
  modelMatches,
  nanoToUsdNumber,
  parseDuration,
  parseUsd,
  pythonFloat,
  type Reservation,
  type SpendRecord,
  throttledLimit,
  usageFromAnthropic,
  usageFromOpenAI,
  worstCaseCost,
} from "../src/index.js";
import { ONE_CENT_REQUEST, ONE_CENT_USAGE, PRICES } from "./helpers.js";

/**
 * Every public entry point of @tollgate/budgets given bad input: a TollgateError with a stable code each time (never a
 * TypeError, never a silent pass such as a $0 charge), and nothing changed: spend and holds of the budgets, the
 * store's size, the open reservation, the ledger and the events are the same before and after.
 */

const T0 = Date.parse("2027-06-15T12:00:00Z");
const KEY: BudgetSpec = { scope: "key", id: "k1", maxBudget: "1", duration: "1d" };
const TEAM: BudgetSpec = { scope: "team", id: "t1", maxBudget: "5" };
const SPECS = [KEY, TEAM];

interface World {
  store: MemoryStore;
  budgets: Budgets;
  open: Reservation;
  records: SpendRecord[];
  events: BudgetEvent[];
}

const options = (w: World, extra: Record<string, unknown>) => ({ store: w.store, prices: PRICES, ...extra }) as never;

type Case = [name: string, call: (w: World) => unknown, code: string];

const reserve = (w: World, extra: Record<string, unknown>) =>
  w.budgets.reserve({ requestId: "bad", budgets: SPECS, ...ONE_CENT_REQUEST, ...extra } as never);
const withBudget = (w: World, spec: Record<string, unknown>) =>
  w.budgets.reserve({ requestId: "bad", ...ONE_CENT_REQUEST, budgets: [KEY, { ...KEY, id: "k9", ...spec }] } as never);
const record = (extra: Record<string, unknown>) => ({
  requestId: "r",
  model: "test-model",
  scopes: [{ scope: "key", id: "k1" }],
  usage: ONE_CENT_USAGE,
  cost: 1,
  costUsd: "0.000000001",
  time: T0,
  ...extra,
});

const ENGINE_CASES: Case[] = [
  // construction: every option is checked up front
  ["createBudgets()", () => (createBudgets as (o?: unknown) => Budgets)(), "INVALID_ARGUMENT"],
  ["createBudgets(null)", () => createBudgets(null as never), "INVALID_ARGUMENT"],
  ["createBudgets({})", () => createBudgets({} as never), "INVALID_ARGUMENT"],
  ["store: {}", () => createBudgets({ store: {} as never }), "INVALID_ARGUMENT"],
  ["reset: weekly", (w) => createBudgets(options(w, { reset: "weekly" })), "INVALID_ARGUMENT"],
  ["mode: strict", (w) => createBudgets(options(w, { mode: "strict" })), "INVALID_ARGUMENT"],
  ["unknownModel: ignore", (w) => createBudgets(options(w, { unknownModel: "ignore" })), "INVALID_ARGUMENT"],
  ["defaultMaxTokens 0", (w) => createBudgets(options(w, { defaultMaxTokens: 0 })), "INVALID_ARGUMENT"],
  ["minShrinkTokens -1", (w) => createBudgets(options(w, { minShrinkTokens: -1 })), "INVALID_ARGUMENT"],
  ["reservationTtlMs 1.5", (w) => createBudgets(options(w, { reservationTtlMs: 1.5 })), "INVALID_ARGUMENT"],
  ["thresholds [2]", (w) => createBudgets(options(w, { thresholds: [2] })), "INVALID_ARGUMENT"],
  ["thresholds '0.5'", (w) => createBudgets(options(w, { thresholds: "0.5" })), "INVALID_ARGUMENT"],
  ["thresholds {}", (w) => createBudgets(options(w, { thresholds: {} })), "INVALID_ARGUMENT"],
  ["sink {}", (w) => createBudgets(options(w, { sink: {} })), "INVALID_ARGUMENT"],
  ["onEvent 'x'", (w) => createBudgets(options(w, { onEvent: "x" })), "INVALID_ARGUMENT"],
  ["now 5", (w) => createBudgets(options(w, { now: 5 })), "INVALID_ARGUMENT"],
  ["shrink 1", (w) => createBudgets(options(w, { shrink: 1 })), "INVALID_ARGUMENT"],
  ["syncToStore 'yes'", (w) => createBudgets(options(w, { syncToStore: "yes" })), "INVALID_ARGUMENT"],
  ["keyPrefix ''", (w) => createBudgets(options(w, { keyPrefix: "" })), "INVALID_ARGUMENT"],
  ["keyPrefix 'a{b'", (w) => createBudgets(options(w, { keyPrefix: "a{b" })), "INVALID_ARGUMENT"],
  ["timeZone Nowhere/City", (w) => createBudgets(options(w, { timeZone: "Nowhere/City" })), "INVALID_ARGUMENT"],
  ["prices null", (w) => createBudgets(options(w, { prices: null })), "INVALID_ARGUMENT"],
  ["priceOverrides []", (w) => createBudgets(options(w, { priceOverrides: [] })), "INVALID_ARGUMENT"],
  [
    "prices: a negative price",
    (w) => createBudgets(options(w, { prices: { m: { input_cost_per_token: -1 } } })),
    "INVALID_PRICE",
  ],

  // reserve
  ["reserve(undefined)", (w) => w.budgets.reserve(undefined as never), "INVALID_ARGUMENT"],
  ["reserve(null)", (w) => w.budgets.reserve(null as never), "INVALID_ARGUMENT"],
  ["reserve: budgets undefined", (w) => reserve(w, { budgets: undefined }), "INVALID_ARGUMENT"],
  ["reserve: budgets {}", (w) => reserve(w, { budgets: {} }), "INVALID_ARGUMENT"],
  ["reserve: budgets [null]", (w) => reserve(w, { budgets: [null] }), "INVALID_ARGUMENT"],
  ["reserve: budgets [KEY, 42]", (w) => reserve(w, { budgets: [KEY, 42] }), "INVALID_ARGUMENT"],
  ["reserve: requestId ''", (w) => reserve(w, { requestId: "" }), "INVALID_ARGUMENT"],
  ["reserve: model 7", (w) => reserve(w, { model: 7 }), "INVALID_ARGUMENT"],
  ["reserve: unknown model", (w) => reserve(w, { model: "mystery" }), "UNKNOWN_MODEL"],
  ["reserve: inputTokens -1", (w) => reserve(w, { inputTokens: -1 }), "INVALID_AMOUNT"],
  ["reserve: inputTokens '5'", (w) => reserve(w, { inputTokens: "5" }), "INVALID_AMOUNT"],
  ["reserve: maxTokens 1.5", (w) => reserve(w, { maxTokens: 1.5 }), "INVALID_AMOUNT"],
  ["budget scope 'tenant'", (w) => withBudget(w, { scope: "tenant" }), "INVALID_SCOPE"],
  ["budget id ''", (w) => withBudget(w, { id: "" }), "INVALID_SCOPE"],
  ["team_member without teamId", (w) => withBudget(w, { scope: "team_member" }), "INVALID_SCOPE"],
  ["maxBudget '-1'", (w) => withBudget(w, { maxBudget: "-1" }), "INVALID_AMOUNT"],
  ["maxBudget 'ten'", (w) => withBudget(w, { maxBudget: "ten" }), "INVALID_AMOUNT"],
  ["maxBudget undefined", (w) => withBudget(w, { maxBudget: undefined }), "INVALID_AMOUNT"],
  ["softBudget -1", (w) => withBudget(w, { softBudget: -1 }), "INVALID_AMOUNT"],
  ["duration '30'", (w) => withBudget(w, { duration: "30" }), "INVALID_DURATION"],
  ["duration '1y'", (w) => withBudget(w, { duration: "1y" }), "INVALID_DURATION"],
  ["duration 30", (w) => withBudget(w, { duration: 30 }), "INVALID_DURATION"],
  [
    "reset 'weekly' on a never-resetting budget",
    (w) => withBudget(w, { duration: null, reset: "weekly" }),
    "INVALID_ARGUMENT",
  ],
  ["rolling without startedAt", (w) => withBudget(w, { reset: "rolling" }), "INVALID_ARGUMENT"],
  ["startedAt 1.5", (w) => withBudget(w, { duration: "3d", startedAt: 1.5 }), "INVALID_ARGUMENT"],
  ["timeZone Nowhere/City", (w) => withBudget(w, { timeZone: "Nowhere/City" }), "INVALID_ARGUMENT"],
  [
    "a bad per-model budget of another model",
    (w) => withBudget(w, { model: "other-model", maxBudget: "-5" }),
    "INVALID_AMOUNT",
  ],

  // the open reservation: settle without usage is an error, never a $0 charge
  ["settle(undefined)", (w) => w.open.settle(undefined as never), "INVALID_ARGUMENT"],
  ["settle(null)", (w) => w.open.settle(null as never), "INVALID_ARGUMENT"],
  ["settle('x')", (w) => w.open.settle("x" as never), "INVALID_ARGUMENT"],
  ["settle({})", (w) => w.open.settle({} as never), "INVALID_AMOUNT"],
  ["settle({ outputTokens })", (w) => w.open.settle({ outputTokens: 10 } as never), "INVALID_AMOUNT"],
  ["settle: inputTokens -1", (w) => w.open.settle({ inputTokens: -1 }), "INVALID_AMOUNT"],
  ["settle: outputTokens 1.5", (w) => w.open.settle({ inputTokens: 1, outputTokens: 1.5 }), "INVALID_AMOUNT"],
  ["settle: cached > input", (w) => w.open.settle({ inputTokens: 5, cachedInputTokens: 6 }), "INVALID_AMOUNT"],
  ["renew(0)", (w) => w.open.renew(0), "INVALID_ARGUMENT"],
  ["renew('x')", (w) => w.open.renew("x" as never), "INVALID_ARGUMENT"],

  // status, hydrate, priceOf
  ["status(undefined)", (w) => w.budgets.status(undefined as never), "INVALID_ARGUMENT"],
  ["status(KEY) (not an array)", (w) => w.budgets.status(KEY as never), "INVALID_ARGUMENT"],
  ["status([null])", (w) => w.budgets.status([null as never]), "INVALID_ARGUMENT"],
  ["hydrate(undefined)", (w) => w.budgets.hydrate(undefined as never), "INVALID_ARGUMENT"],
  ["hydrate: budgets {}", (w) => w.budgets.hydrate({ budgets: {} as never }), "INVALID_ARGUMENT"],
  ["hydrate: records 5", (w) => w.budgets.hydrate({ budgets: SPECS, records: 5 as never }), "INVALID_ARGUMENT"],
  [
    "hydrate: records [valid, null]",
    (w) => w.budgets.hydrate({ budgets: SPECS, records: [record({}), null] as never }),
    "INVALID_ARGUMENT",
  ],
  [
    "hydrate: record scopes 'k1'",
    (w) => w.budgets.hydrate({ budgets: SPECS, records: [record({ scopes: "k1" })] as never }),
    "INVALID_ARGUMENT",
  ],
  [
    "hydrate: record cost -1",
    (w) => w.budgets.hydrate({ budgets: SPECS, records: [record({ cost: -1 })] as never }),
    "INVALID_AMOUNT",
  ],
  [
    "hydrate: record time NaN",
    (w) => w.budgets.hydrate({ budgets: SPECS, records: [record({ time: Number.NaN })] as never }),
    "INVALID_ARGUMENT",
  ],
  [
    "hydrate: periods of the wrong length",
    (w) => w.budgets.hydrate({ budgets: SPECS, records: [record({ periods: ["a", "b"] })] as never }),
    "INVALID_ARGUMENT",
  ],
  ["hydrate: totals [null]", (w) => w.budgets.hydrate({ totals: [null as never] }), "INVALID_ARGUMENT"],
  [
    "hydrate: totals [good, negative]",
    (w) =>
      w.budgets.hydrate({
        totals: [
          { budget: KEY, spend: "0.5" },
          { budget: TEAM, spend: "-1" },
        ],
      }),
    "INVALID_AMOUNT",
  ],
  ["hydrate: spendNano 1.5", (w) => w.budgets.hydrate({ totals: [{ budget: KEY, spendNano: 1.5 }] }), "INVALID_AMOUNT"],
  ["priceOf(undefined)", (w) => w.budgets.priceOf(undefined as never), "INVALID_ARGUMENT"],
];

const price = compilePrice("test-model", { input_cost_per_token: "0.000001" });
const HELPER_CASES: Array<[name: string, call: () => unknown, code: string]> = [
  ["litellmBudgets(undefined)", () => litellmBudgets(undefined as never), "INVALID_ARGUMENT"],
  ["parseUsd(undefined)", () => parseUsd(undefined as never, "x"), "INVALID_AMOUNT"],
  ["parseUsd('1e-10')", () => parseUsd("1e-10", "x"), "INVALID_AMOUNT"],
  ["formatUsd(1.5)", () => formatUsd(1.5), "INVALID_AMOUNT"],
  ["formatUsd(undefined)", () => formatUsd(undefined as never), "INVALID_AMOUNT"],
  ["nanoToUsdNumber('1')", () => nanoToUsdNumber("1" as never), "INVALID_AMOUNT"],
  ["pythonFloat('1')", () => pythonFloat("1" as never), "INVALID_ARGUMENT"],
  ["parseDuration(30)", () => parseDuration(30 as never), "INVALID_DURATION"],
  ["parseDuration('0d')", () => parseDuration("0d"), "INVALID_DURATION"],
  ["createSchedule(undefined)", () => createSchedule(undefined as never), "INVALID_ARGUMENT"],
  [
    "createSchedule: reset weekly",
    () => createSchedule({ duration: null, reset: "weekly" as never }),
    "INVALID_ARGUMENT",
  ],
  ["checkTimeZone('Mars/Base')", () => checkTimeZone("Mars/Base"), "INVALID_ARGUMENT"],
  ["createPriceBook(undefined)", () => createPriceBook(undefined as never), "INVALID_ARGUMENT"],
  ["createPriceBook({}, null)", () => createPriceBook({}, null as never), "INVALID_ARGUMENT"],
  ["compilePrice('m', null)", () => compilePrice("m", null as never), "INVALID_PRICE"],
  ["costOf(undefined, usage)", () => costOf(undefined as never, ONE_CENT_USAGE), "INVALID_PRICE"],
  ["costOf(price, undefined)", () => costOf(price, undefined as never), "INVALID_ARGUMENT"],
  ["costOf(price, {})", () => costOf(price, {} as never), "INVALID_AMOUNT"],
  ["checkUsage([])", () => checkUsage([]), "INVALID_ARGUMENT"],
  ["worstCaseCost(price, -1, 0)", () => worstCaseCost(price, -1, 0), "INVALID_AMOUNT"],
  ["usageFromOpenAI(undefined)", () => usageFromOpenAI(undefined as never), "INVALID_ARGUMENT"],
  ["usageFromAnthropic(null)", () => usageFromAnthropic(null as never), "INVALID_ARGUMENT"],
  ["formatBudgetExceeded(undefined)", () => formatBudgetExceeded(undefined as never), "INVALID_ARGUMENT"],
  ["budgetErrorBody(undefined)", () => budgetErrorBody(undefined as never), "INVALID_ARGUMENT"],
  ["budgetErrorBody(denial, 99)", () => budgetErrorBody({ message: "x" }, 99), "INVALID_ARGUMENT"],
  ["throttledLimit(10, 0)", () => throttledLimit(10, 0), "INVALID_ARGUMENT"],
  ["throttledLimit(undefined, 2)", () => throttledLimit(undefined, 2), "INVALID_ARGUMENT"],
  ["throttledLimit(-1, 0.5)", () => throttledLimit(-1, 0.5), "INVALID_LIMIT"],
  [
    "compileBudget(null)",
    () => compileBudget(null as never, { timeZone: "UTC", reset: "calendar", keyPrefix: "budget" }),
    "INVALID_ARGUMENT",
  ],
  ["baseKeyOf(undefined)", () => baseKeyOf(undefined as never, "budget"), "INVALID_ARGUMENT"],
  ["modelMatches(undefined, 'x')", () => modelMatches(undefined as never, "x"), "INVALID_ARGUMENT"],
];

describe("bad input to @tollgate/budgets: a typed error and nothing changed", () => {
  let w: World;

  beforeEach(async () => {
    const store = createMemoryStore({ now: () => T0 });
    const records: SpendRecord[] = [];
    const events: BudgetEvent[] = [];
    const opts: BudgetsOptions = {
      store,
      prices: PRICES,
      now: () => T0,
      sink: { write: (r) => void records.push(r) },
      onEvent: (e) => events.push(e),
    };
    const budgets = createBudgets(opts);
    const first = await budgets.reserve({ requestId: "r1", budgets: SPECS, ...ONE_CENT_REQUEST });
    const second = await budgets.reserve({ requestId: "r2", budgets: SPECS, ...ONE_CENT_REQUEST });
    if (!first.ok || !second.ok) throw new Error("setup reservations must be admitted");
    await first.reservation.settle(ONE_CENT_USAGE);
    w = { store, budgets, open: second.reservation, records, events };
  });

  async function snapshot() {
    return {
      status: await w.budgets.status(SPECS),
      size: w.store.size,
      open: w.open.state,
      records: w.records.length,
      events: w.events.length,
    };
  }

  it.each(ENGINE_CASES)("%s", async (_name, call, code) => {
    const before = await snapshot();
    expect(before.status.map((s) => [s.spend, s.reserved])).toEqual([
      [10_000_000, 10_000_000],
      [10_000_000, 10_000_000],
    ]);
    let error: unknown;
    try {
      await call(w);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TollgateError);
    expect((error as TollgateError).code).toBe(code);
    expect(await snapshot()).toEqual(before);
  });

  it("the snapshot sees a real change: the open reservation still settles, once", async () => {
    const before = await snapshot();
    await w.open.settle({ inputTokens: 1000, outputTokens: 0 });
    const after = await snapshot();
    expect(after).not.toEqual(before);
    expect(after.status.map((s) => [s.spend, s.reserved])).toEqual([
      [11_000_000, 0],
      [11_000_000, 0],
    ]);
  });
});

describe("bad input to the budgets helpers: typed errors", () => {
  it.each(HELPER_CASES)("%s", (_name, call, code) => {
    let error: unknown;
    try {
      call();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TollgateError);
    expect((error as TollgateError).code).toBe(code);
  });
});
