import { createMemoryStore, type MemoryStore } from "@tollgate/store-memory";
import { beforeEach, describe, expect, it } from "vitest";
import {
  applyImplicitOutputCap,
  type CounterStore,
  capAndEstimate,
  createLimiter,
  type Denial,
  type Descriptor,
  denialBody,
  estimateRequestTokens,
  formatRateLimitMessage,
  formatResetDuration,
  formatUtcTimestamp,
  type Limiter,
  outputTokenFloor,
  type Reservation,
  rateLimitHeaders,
  retryAfterSeconds,
  scopes,
  TollgateError,
  tokensFromUsage,
  validateAdjustBatch,
  validateAdmitBatch,
  validateDescriptor,
  validateReadQuery,
  validateRenew,
} from "../src/index.js";
import { codeOf } from "./code-of.js";

/**
 * Every public entry point of @tollgate/core given bad input: each call fails with a TollgateError of a stable code
 * (never a plain TypeError, never a silent pass), and nothing is counted: the counters of an earlier admission, the
 * open reservation and the store's size are the same before and after.
 */

const T0 = Date.UTC(2026, 10, 23, 12, 0, 0);
const D: Descriptor[] = [
  { scope: "api_key", value: "k1", requests: 10, tokens: 1_000, maxParallel: 3 },
  { scope: "team", value: "t1", requests: 100 },
];

/** The memory store seen through the contract's async methods only (the engine's object path). */
function contractOnly(s: MemoryStore): CounterStore {
  return {
    contractVersion: s.contractVersion,
    name: "memory (contract only)",
    admit: (b) => s.admit(b),
    adjust: (b) => s.adjust(b),
    renew: (l, ttl) => s.renew(l, ttl),
    read: (q) => s.read(q),
    close: () => s.close(),
  };
}

interface World {
  store: MemoryStore;
  limiter: Limiter;
  /** An open reservation of `limiter`, holding 100 tokens and one in-flight slot. */
  open: Reservation;
  /** A limiter on another store, and one of its open reservations. */
  other: Limiter;
  otherStore: MemoryStore;
  foreign: Reservation;
  /** A reservation of an admission that counted nothing (descriptors without limits). */
  empty: Reservation;
}

async function snapshot(w: World) {
  const probe = createLimiter({ store: w.store });
  const otherProbe = createLimiter({ store: w.otherStore });
  const used = (await probe.status(D)).map((s) => `${s.scope}:${s.type}=${s.used}`);
  const otherUsed = (await otherProbe.status(D)).map((s) => `${s.scope}:${s.type}=${s.used}`);
  return {
    used,
    otherUsed,
    size: w.store.size,
    otherSize: w.otherStore.size,
    states: [w.open.state, w.foreign.state, w.empty.state],
  };
}

type Case = [name: string, call: (w: World) => unknown, code: string];

const fullStore = (extra: Record<string, unknown>) => ({
  admit: () => undefined,
  adjust: () => undefined,
  renew: () => undefined,
  read: () => undefined,
  close: () => undefined,
  name: "fake",
  ...extra,
});

const LIMITER_CASES: Case[] = [
  // construction: every option is checked up front
  ["createLimiter()", () => (createLimiter as (o?: unknown) => Limiter)(), "INVALID_ARGUMENT"],
  ["createLimiter(null)", () => createLimiter(null as never), "INVALID_ARGUMENT"],
  ["createLimiter({})", () => createLimiter({} as never), "INVALID_ARGUMENT"],
  ["store: {}", () => createLimiter({ store: {} as never }), "INVALID_ARGUMENT"],
  ["store: a string", () => createLimiter({ store: "redis://x" as never }), "INVALID_ARGUMENT"],
  ["store without contractVersion", () => createLimiter({ store: fullStore({}) as never }), "INVALID_ARGUMENT"],
  [
    "store of contract 1 (no tickets)",
    () => createLimiter({ store: fullStore({ contractVersion: 1 }) as never }),
    "CONTRACT_VERSION_MISMATCH",
  ],
  [
    "store missing read()",
    (w) => createLimiter({ store: { ...contractOnly(w.store), read: undefined } as never }),
    "INVALID_ARGUMENT",
  ],
  ["leaseTtlMs 0", (w) => createLimiter({ store: w.store, leaseTtlMs: 0 }), "INVALID_ARGUMENT"],
  ["leaseTtlMs 1.5", (w) => createLimiter({ store: w.store, leaseTtlMs: 1.5 }), "INVALID_ARGUMENT"],
  ["leaseTtlMs string", (w) => createLimiter({ store: w.store, leaseTtlMs: "1000" as never }), "INVALID_ARGUMENT"],
  ["parallelRetryAfterMs -5", (w) => createLimiter({ store: w.store, parallelRetryAfterMs: -5 }), "INVALID_ARGUMENT"],
  [
    "parallelRetryAfterMs NaN",
    (w) => createLimiter({ store: w.store, parallelRetryAfterMs: Number.NaN }),
    "INVALID_ARGUMENT",
  ],
  ["parallelRetryAfterMs 0.5", (w) => createLimiter({ store: w.store, parallelRetryAfterMs: 0.5 }), "INVALID_ARGUMENT"],
  ["createId not a function", (w) => createLimiter({ store: w.store, createId: "x" as never }), "INVALID_ARGUMENT"],

  // admit
  ["admit(undefined)", (w) => w.limiter.admit(undefined as never), "INVALID_ARGUMENT"],
  ["admit(null)", (w) => w.limiter.admit(null as never), "INVALID_ARGUMENT"],
  ["admit(one descriptor, not an array)", (w) => w.limiter.admit(D[0] as never), "INVALID_ARGUMENT"],
  ["admit(a string)", (w) => w.limiter.admit("api_key" as never), "INVALID_ARGUMENT"],
  ["admit([null])", (w) => w.limiter.admit([null as never]), "INVALID_ARGUMENT"],
  ["admit([valid, 42])", (w) => w.limiter.admit([D[0]!, 42 as never]), "INVALID_ARGUMENT"],
  ["admit: empty scope", (w) => w.limiter.admit([{ scope: "", value: "x", requests: 1 }]), "INVALID_SCOPE"],
  ["admit: value with {", (w) => w.limiter.admit([{ scope: "a", value: "x{", requests: 1 }]), "INVALID_SCOPE"],
  ["admit: negative limit", (w) => w.limiter.admit([D[0]!, { scope: "a", value: "x", requests: -1 }]), "INVALID_LIMIT"],
  [
    "admit: windowMs 0",
    (w) => w.limiter.admit([D[0]!, { scope: "a", value: "x", requests: 1, windowMs: 0 }]),
    "INVALID_WINDOW",
  ],
  ["admit: unknown algorithm", (w) => w.limiter.admit([{ ...D[0]!, algorithm: "leaky" as never }]), "INVALID_ARGUMENT"],
  ["admit: tokens -1", (w) => w.limiter.admit(D, { tokens: -1 }), "INVALID_AMOUNT"],
  ["admit: tokens 1.5", (w) => w.limiter.admit(D, { tokens: 1.5 }), "INVALID_AMOUNT"],
  ["admit: options null", (w) => w.limiter.admit(D, null as never), "INVALID_ARGUMENT"],

  // settle
  ["settle(r, undefined)", (w) => w.limiter.settle(w.open, undefined as never), "INVALID_ARGUMENT"],
  ["settle(r, null)", (w) => w.limiter.settle(w.open, null as never), "INVALID_ARGUMENT"],
  ["settle(r, {}) (no usage)", (w) => w.limiter.settle(w.open, {} as never), "INVALID_AMOUNT"],
  ["settle(r, { tokens: -1 })", (w) => w.limiter.settle(w.open, { tokens: -1 }), "INVALID_AMOUNT"],
  ["settle(r, { tokens: '5' })", (w) => w.limiter.settle(w.open, { tokens: "5" as never }), "INVALID_AMOUNT"],
  [
    "settle: unreserved {}",
    (w) => w.limiter.settle(w.open, { tokens: 1, unreserved: {} as never }),
    "INVALID_ARGUMENT",
  ],
  [
    "settle: unreserved [null]",
    (w) => w.limiter.settle(w.open, { tokens: 1, unreserved: [null as never] }),
    "INVALID_ARGUMENT",
  ],
  [
    "settle: unreserved names an admitted scope",
    (w) => w.limiter.settle(w.open, { tokens: 1, unreserved: [{ scope: "api_key", value: "k1", tokens: 5 }] }),
    "INVALID_ARGUMENT",
  ],
  [
    "settle: unreserved with a bad limit",
    (w) => w.limiter.settle(w.open, { tokens: 1, unreserved: [{ scope: "user", value: "u", tokens: -5 }] }),
    "INVALID_LIMIT",
  ],
  ["settle(undefined, usage)", (w) => w.limiter.settle(undefined as never, { tokens: 1 }), "INVALID_ARGUMENT"],
  ["settle(null, usage)", (w) => w.limiter.settle(null as never, { tokens: 1 }), "INVALID_ARGUMENT"],
  [
    "settle(forged { state: 'open' })",
    (w) => w.limiter.settle({ id: "x", tokens: 0, state: "open" } as unknown as Reservation, { tokens: 1 }),
    "INVALID_ARGUMENT",
  ],
  [
    "settle(a copy of a reservation)",
    (w) => w.limiter.settle({ ...w.open } as Reservation, { tokens: 1 }),
    "INVALID_ARGUMENT",
  ],
  ["settle(another limiter's reservation)", (w) => w.limiter.settle(w.foreign, { tokens: 1 }), "INVALID_ARGUMENT"],

  // release and renew
  ["release(undefined)", (w) => w.limiter.release(undefined as never), "INVALID_ARGUMENT"],
  ["release(null)", (w) => w.limiter.release(null as never), "INVALID_ARGUMENT"],
  [
    "release(forged)",
    (w) => w.limiter.release({ id: "x", tokens: 0, state: "open" } as unknown as Reservation),
    "INVALID_ARGUMENT",
  ],
  ["release(another limiter's)", (w) => w.limiter.release(w.foreign), "INVALID_ARGUMENT"],
  ["release(another limiter's, empty)", (w) => w.other.release(w.empty), "INVALID_ARGUMENT"],
  ["renew(undefined)", (w) => w.limiter.renew(undefined as never), "INVALID_ARGUMENT"],
  ["renew(null)", (w) => w.limiter.renew(null as never), "INVALID_ARGUMENT"],
  [
    "renew(forged)",
    (w) => w.limiter.renew({ id: "x", tokens: 0, state: "open" } as unknown as Reservation),
    "INVALID_ARGUMENT",
  ],
  ["renew(another limiter's)", (w) => w.limiter.renew(w.foreign), "INVALID_ARGUMENT"],

  // status
  ["status(undefined)", (w) => w.limiter.status(undefined as never), "INVALID_ARGUMENT"],
  ["status(one descriptor)", (w) => w.limiter.status(D[0] as never), "INVALID_ARGUMENT"],
  ["status([bad scope])", (w) => w.limiter.status([{ scope: "a b", value: "x", requests: 1 }]), "INVALID_SCOPE"],
];

const DENIAL: Denial = {
  scope: "api_key",
  value: "k1",
  type: "requests",
  limit: 10,
  remaining: 0,
  used: 10,
  resetAt: T0 + 60_000,
  windowMs: 60_000,
  wouldDeny: false,
  enforced: true,
  retryAfterMs: 1_000,
  now: T0,
};

const HELPER_CASES: Array<[name: string, call: () => unknown, code: string]> = [
  ["scopes.apiKey(undefined)", () => scopes.apiKey(undefined as never), "INVALID_SCOPE"],
  ["scopes.teamMember('t', null)", () => scopes.teamMember("t", null as never), "INVALID_SCOPE"],
  ["scopes.mcpPerKey('k', '')", () => scopes.mcpPerKey("k", ""), "INVALID_SCOPE"],
  ["scopes.apiKey: negative limit", () => scopes.apiKey("k", { requests: -1 }), "INVALID_LIMIT"],
  ["scopes.team: windowMs 0", () => scopes.team("t", { windowMs: 0 }), "INVALID_WINDOW"],
  ["validateDescriptor(undefined)", () => validateDescriptor(undefined as never), "INVALID_ARGUMENT"],
  [
    "validateDescriptor: shadow 'yes'",
    () => validateDescriptor({ ...D[0]!, shadow: "yes" as never }),
    "INVALID_ARGUMENT",
  ],
  ["estimateRequestTokens(undefined)", () => estimateRequestTokens(undefined), "INVALID_ARGUMENT"],
  ["estimateRequestTokens: max_tokens -1", () => estimateRequestTokens({ max_tokens: -1 }), "INVALID_ARGUMENT"],
  ["estimateRequestTokens: messages string", () => estimateRequestTokens({ messages: "hi" }), "INVALID_ARGUMENT"],
  ["estimateRequestTokens: callType", () => estimateRequestTokens({}, { callType: "x" as never }), "INVALID_ARGUMENT"],
  ["applyImplicitOutputCap(null)", () => applyImplicitOutputCap(null), "INVALID_ARGUMENT"],
  ["capAndEstimate([])", () => capAndEstimate([]), "INVALID_ARGUMENT"],
  ["outputTokenFloor(-1)", () => outputTokenFloor(-1), "INVALID_ARGUMENT"],
  ["tokensFromUsage('x')", () => tokensFromUsage("x"), "INVALID_ARGUMENT"],
  ["tokensFromUsage: negative", () => tokensFromUsage({ prompt_tokens: -1 }), "INVALID_ARGUMENT"],
  ["tokensFromUsage: mode", () => tokensFromUsage({}, "all" as never), "INVALID_ARGUMENT"],
  ["formatRateLimitMessage(undefined)", () => formatRateLimitMessage(undefined as never), "INVALID_ARGUMENT"],
  [
    "formatRateLimitMessage: resetAt NaN",
    () => formatRateLimitMessage({ ...DENIAL, resetAt: Number.NaN }),
    "INVALID_ARGUMENT",
  ],
  ["denialBody(null)", () => denialBody(null as never), "INVALID_ARGUMENT"],
  ["retryAfterSeconds(undefined)", () => retryAfterSeconds(undefined as never), "INVALID_ARGUMENT"],
  ["retryAfterSeconds: -1", () => retryAfterSeconds({ retryAfterMs: -1 }), "INVALID_ARGUMENT"],
  ["rateLimitHeaders(undefined)", () => rateLimitHeaders(undefined as never), "INVALID_ARGUMENT"],
  ["rateLimitHeaders([], null)", () => rateLimitHeaders([], null as never), "INVALID_ARGUMENT"],
  ["rateLimitHeaders: now NaN", () => rateLimitHeaders([], DENIAL, { now: Number.NaN }), "INVALID_ARGUMENT"],
  ["formatUtcTimestamp(NaN)", () => formatUtcTimestamp(Number.NaN), "INVALID_ARGUMENT"],
  ["formatResetDuration('1s')", () => formatResetDuration("1s" as never), "INVALID_ARGUMENT"],
  ["validateAdmitBatch(undefined)", () => validateAdmitBatch(undefined as never), "INVALID_ARGUMENT"],
  [
    "validateAdmitBatch: windows {}",
    () => validateAdmitBatch({ windows: {}, gauges: [] } as never),
    "INVALID_ARGUMENT",
  ],
  [
    "validateAdmitBatch: windows [null]",
    () => validateAdmitBatch({ windows: [null], gauges: [] } as never),
    "INVALID_ARGUMENT",
  ],
  [
    "validateAdmitBatch: counters [null]",
    () =>
      validateAdmitBatch({
        windows: [{ key: "{a:b}", windowMs: 1000, algorithm: "fixed", counters: [null] }],
        gauges: [],
      } as never),
    "INVALID_ARGUMENT",
  ],
  ["validateAdjustBatch(null)", () => validateAdjustBatch(null as never), "INVALID_ARGUMENT"],
  [
    "validateAdjustBatch: release null entries",
    () => validateAdjustBatch({ windows: [], release: { id: "x", gauges: [null], holds: [] } } as never),
    "INVALID_ARGUMENT",
  ],
  ["validateRenew(undefined, 1000)", () => validateRenew(undefined as never, 1000), "INVALID_ARGUMENT"],
  ["validateReadQuery(undefined)", () => validateReadQuery(undefined as never), "INVALID_ARGUMENT"],
  ["validateReadQuery: no gauges", () => validateReadQuery({ windows: [] } as never), "INVALID_ARGUMENT"],
];

describe.each([
  ["in-process flat path", true],
  ["contract object path", false],
])("bad input on the %s: a typed error and nothing counted", (_path, flat) => {
  let w: World;

  beforeEach(async () => {
    const store = createMemoryStore({ now: () => T0 });
    const otherStore = createMemoryStore({ now: () => T0 });
    const limiter = createLimiter({ store: flat ? store : contractOnly(store) });
    const other = createLimiter({ store: flat ? otherStore : contractOnly(otherStore) });
    const a = await limiter.admit(D, { tokens: 100 });
    const b = await other.admit(D, { tokens: 100 });
    const e = await limiter.admit([{ scope: "api_key", value: "no-limits" }]);
    if (!a.ok || !b.ok || !e.ok) throw new Error("setup admissions must be admitted");
    w = { store, limiter, open: a.reservation, other, otherStore, foreign: b.reservation, empty: e.reservation };
  });

  it.each(LIMITER_CASES)("%s", async (_name, call, code) => {
    const before = await snapshot(w);
    let error: unknown;
    try {
      await call(w);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TollgateError);
    expect((error as TollgateError).code).toBe(code);
    expect(await snapshot(w)).toEqual(before);
  });

  it("the snapshot sees a real change: the reservations still settle, each through its own limiter, exactly once", async () => {
    const before = await snapshot(w);
    expect(before.used).toContain("api_key:tokens=100");
    expect(before.used).toContain("api_key:max_parallel_requests=1");
    expect(await w.limiter.settle(w.open, { tokens: 40 })).toBe(true);
    expect(await w.other.release(w.foreign)).toBe(true);
    const after = await snapshot(w);
    expect(after.used).toContain("api_key:tokens=40");
    expect(after.used).toContain("api_key:max_parallel_requests=0");
    expect(after.otherUsed).toContain("api_key:tokens=0");
    expect(after.otherUsed).toContain("api_key:requests=0");
    expect(await w.limiter.settle(w.open, { tokens: 40 })).toBe(false);
    expect(await w.limiter.release(w.empty)).toBe(true);
  });
});

describe("bad input to the pure helpers: typed errors", () => {
  it.each(HELPER_CASES)("%s", (_name, call, code) => {
    expect(codeOf(call)).toBe(code);
  });
});
