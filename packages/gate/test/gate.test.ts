import { scopes, TollgateError } from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";
import { describe, expect, it } from "vitest";
import { createGate, type GateRequest } from "../src/index.js";
import {
  admitted,
  applied,
  BUDGETS,
  CENT,
  KEY,
  PRICES,
  spend,
  T0,
  TEAM,
  USER,
  used,
  type World,
  world,
} from "./helpers.js";

const REQUEST: GateRequest = {
  limits: [KEY, TEAM, USER],
  tokens: { input: 2000, output: 4000 },
  model: "test-model",
  budgets: BUDGETS,
  maxTokens: 4000,
};
const USAGE = { inputTokens: 1500, outputTokens: 700 }; // $0.0029
const COST = 1500 * 1000 + 700 * 2000;

const snapshot = (w: World) => ({ ...w.calls });

// Every behaviour on both paths: the memory store's flat capability, and the contract's object form every other
// store gets (the same memory store seen through its async methods only).
describe.each([
  ["in-process flat path", true],
  ["contract object path", false],
])("gate on the %s", (_path, flat) => {
  describe("one store call to admit, one to finish", () => {
    it("3 scopes (requests + tokens + max parallel on the key) and 3 budgets: 1 admit and 1 adjust per request", async () => {
      const w = world(flat);
      for (let i = 0; i < 10; i++) {
        const a = admitted(await w.gate.admit(REQUEST));
        expect(w.calls).toEqual({ admit: i + 1, adjust: i, renew: 0, read: 0 });
        expect(applied(await a.ticket.settle(USAGE)).cost).toBe(COST);
        expect(w.calls).toEqual({ admit: i + 1, adjust: i + 1, renew: 0, read: 0 });
      }
      expect(await used(w, [KEY])).toEqual([
        "api_key:requests=10",
        "api_key:tokens=22000",
        "api_key:max_parallel_requests=0",
      ]);
      expect(await spend(w, BUDGETS)).toEqual([
        [10 * COST, 0],
        [10 * COST, 0],
        [10 * COST, 0],
      ]);
      expect(w.records).toHaveLength(10);
    });

    it("fail, release and renew are one store call each; a second finish makes none", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      const b = admitted(await w.gate.admit(REQUEST));
      const c = admitted(await w.gate.admit(REQUEST));
      const before = snapshot(w);
      expect(await a.ticket.renew()).toBe(true);
      await a.ticket.fail();
      await b.ticket.release();
      await c.ticket.settle("estimate");
      expect(w.calls).toEqual({ ...before, adjust: before.adjust + 3, renew: 1 });
      expect((await a.ticket.settle(USAGE)).status).toBe("duplicate");
      expect((await b.ticket.release()).status).toBe("duplicate");
      expect(await c.ticket.renew()).toBe(false);
      expect(w.calls).toEqual({ ...before, adjust: before.adjust + 3, renew: 1 });
    });
  });

  describe("what an admission holds and a settle charges", () => {
    it("holds tokens, a slot and the worst-case cost together; settle charges actual tokens and cost, frees all", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      expect(a).toMatchObject({ maxTokens: 4000, shrunk: false, now: T0 });
      expect(a.ticket).toMatchObject({ state: "open", reservedCost: CENT, tokens: { input: 2000, output: 4000 } });
      expect(a.statuses.map((s) => `${s.scope}:${s.type}=${s.used}`)).toEqual([
        "api_key:requests=1",
        "api_key:tokens=6000",
        "team:requests=1",
        "team:tokens=6000",
        "user:requests=1",
        "user:tokens=6000",
        "api_key:max_parallel_requests=1",
      ]);
      expect(a.budgets.map((b) => [b.budget.scope, b.spend, b.reserved])).toEqual([
        ["key", 0, CENT],
        ["team", 0, CENT],
        ["user", 0, CENT],
      ]);
      expect(await spend(w, BUDGETS)).toEqual([
        [0, CENT],
        [0, CENT],
        [0, CENT],
      ]);
      const o = applied(await a.ticket.settle(USAGE));
      expect(o.record).toMatchObject({ requestId: a.ticket.id, model: "test-model", cost: COST, usage: USAGE });
      expect(a.ticket.state).toBe("settled");
      expect(await used(w, [KEY])).toEqual([
        "api_key:requests=1",
        "api_key:tokens=2200",
        "api_key:max_parallel_requests=0",
      ]);
      expect(await spend(w, BUDGETS)).toEqual([
        [COST, 0],
        [COST, 0],
        [COST, 0],
      ]);
    });

    it("each limit counts its token type: input limits the input, output limits the output, total both", async () => {
      const w = world(flat);
      const input = scopes.modelPerProjectItpm("p", "m", { tokens: 10_000 });
      const output = scopes.modelPerProjectOtpm("p", "m", { tokens: 10_000 });
      const total = scopes.apiKey("k", { tokens: 10_000 });
      const a = admitted(await w.gate.admit({ limits: [input, output, total], tokens: { input: 300, output: 500 } }));
      expect(await used(w, [input, output, total])).toEqual([
        "model_per_project_itpm:tokens=300",
        "model_per_project_otpm:tokens=500",
        "api_key:tokens=800",
      ]);
      // input limits count prompt tokens minus cached ones (LiteLLM), output limits the completion
      await a.ticket.settle({ inputTokens: 250, cachedInputTokens: 50, outputTokens: 600 });
      expect(await used(w, [input, output, total])).toEqual([
        "model_per_project_itpm:tokens=200",
        "model_per_project_otpm:tokens=600",
        "api_key:tokens=800",
      ]);
    });

    it("an input limit that is full denies; the output limit beside it is untouched", async () => {
      const w = world(flat);
      const input = scopes.modelPerProjectItpm("p", "m", { tokens: 1_000 });
      const output = scopes.modelPerProjectOtpm("p", "m", { tokens: 1_000_000 });
      admitted(await w.gate.admit({ limits: [input, output], tokens: { input: 900, output: 10 } }));
      const d = await w.gate.admit({ limits: [input, output], tokens: { input: 200, output: 10 } });
      expect(d.ok === false && d.reason === "rate_limit" && d.denial.scope).toBe("model_per_project_itpm");
      expect(await used(w, [input, output])).toEqual([
        "model_per_project_itpm:tokens=900",
        "model_per_project_otpm:tokens=10",
      ]);
    });

    it("fail (the provider failed): the request keeps counting, unused tokens and cost come back, the slot is freed", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      const streamed = { inputTokens: 2000, outputTokens: 100 };
      const o = applied(await a.ticket.fail(streamed));
      expect(o.cost).toBe(2000 * 1000 + 100 * 2000);
      expect(a.ticket.state).toBe("failed");
      expect(await used(w, [KEY])).toEqual([
        "api_key:requests=1",
        "api_key:tokens=2100",
        "api_key:max_parallel_requests=0",
      ]);
      expect((await spend(w, BUDGETS))[0]).toEqual([2_200_000, 0]);
      // without a usage: every token and every cent back, the request still counted, no spend record
      const b = admitted(await w.gate.admit(REQUEST));
      expect(await b.ticket.fail()).toEqual({ status: "applied", cost: 0, record: undefined });
      expect(await used(w, [KEY])).toEqual([
        "api_key:requests=2",
        "api_key:tokens=2100",
        "api_key:max_parallel_requests=0",
      ]);
      expect((await spend(w, BUDGETS))[0]).toEqual([2_200_000, 0]);
      expect(w.records).toHaveLength(1);
    });

    it("release (never happened): everything comes back; later settles and releases are duplicates", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      expect(await a.ticket.release()).toEqual({ status: "applied", cost: 0, record: undefined });
      expect(await used(w, [KEY])).toEqual([
        "api_key:requests=0",
        "api_key:tokens=0",
        "api_key:max_parallel_requests=0",
      ]);
      expect(await spend(w, BUDGETS)).toEqual([
        [0, 0],
        [0, 0],
        [0, 0],
      ]);
      expect(await a.ticket.release()).toEqual({ status: "duplicate" });
      expect(await a.ticket.settle(USAGE)).toEqual({ status: "duplicate" });
      expect(await a.ticket.fail()).toEqual({ status: "duplicate" });
      expect(w.records).toHaveLength(0);
    });

    it('settle("estimate") charges the admission\'s own estimate', async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      expect(applied(await a.ticket.settle("estimate")).cost).toBe(CENT);
      expect((await used(w, [KEY]))[1]).toBe("api_key:tokens=6000");
      expect(await spend(w, BUDGETS)).toEqual([
        [CENT, 0],
        [CENT, 0],
        [CENT, 0],
      ]);
    });

    it("a settle without a full usage is a typed error and leaves the ticket open (never a silent $0)", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      const cases: Array<[unknown, string]> = [
        [undefined, "INVALID_ARGUMENT"],
        [null, "INVALID_ARGUMENT"],
        [{}, "INVALID_AMOUNT"],
        [{ inputTokens: 5 }, "INVALID_AMOUNT"],
        [{ outputTokens: 5 }, "INVALID_AMOUNT"],
        [{ inputTokens: -1, outputTokens: 5 }, "INVALID_AMOUNT"],
        [{ inputTokens: 5, outputTokens: 1.5 }, "INVALID_AMOUNT"],
      ];
      for (const [usage, code] of cases) {
        await expect(a.ticket.settle(usage as never)).rejects.toMatchObject({ code });
      }
      await expect(a.ticket.fail("estimate" as never)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      expect(a.ticket.state).toBe("open");
      expect(w.calls.adjust).toBe(0);
      expect(applied(await a.ticket.settle(USAGE)).cost).toBe(COST);
    });
  });

  describe("exactly once by ticket id", () => {
    it("concurrent settles and releases of one ticket: one applies", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      const outcomes = await Promise.all([
        a.ticket.settle(USAGE),
        a.ticket.settle(USAGE),
        a.ticket.release(),
        a.ticket.fail(),
      ]);
      expect(outcomes.map((o) => o.status)).toEqual(["applied", "duplicate", "duplicate", "duplicate"]);
      expect((await spend(w, BUDGETS))[0]).toEqual([COST, 0]);
    });

    it("a ticket finished by another gate on the same store is a duplicate here (the store recognises its id)", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      const other = createGate({ store: w.store, budgets: { prices: PRICES, now: () => w.clock.now } });
      const copy = other.restore(JSON.parse(JSON.stringify(a.ticket)));
      expect(applied(await copy.settle(USAGE)).cost).toBe(COST);
      const calls = w.calls.adjust;
      expect(await a.ticket.settle(USAGE)).toEqual({ status: "duplicate" });
      expect(w.calls.adjust).toBe(calls + 1); // asked the store, which knew
      expect(await other.restore(a.ticket.toJSON()).release()).toEqual({ status: "duplicate" });
      expect(await used(w, [KEY])).toEqual([
        "api_key:requests=1",
        "api_key:tokens=2200",
        "api_key:max_parallel_requests=0",
      ]);
      expect(await spend(w, BUDGETS)).toEqual([
        [COST, 0],
        [COST, 0],
        [COST, 0],
      ]);
    });

    it("a ticket exported after its settle is a duplicate for the gate that restores it", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      expect(applied(await a.ticket.settle(USAGE)).cost).toBe(COST);
      const other = createGate({ store: w.store, budgets: { prices: PRICES, now: () => w.clock.now } });
      const copy = other.restore(JSON.parse(JSON.stringify(a.ticket)));
      expect(await copy.settle(USAGE)).toEqual({ status: "duplicate" });
      expect(await copy.release()).toEqual({ status: "duplicate" });
      expect((await spend(w, BUDGETS))[0]).toEqual([COST, 0]);
    });

    it("a late admission under a finished ticket id is refused and changes nothing", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit({ ...REQUEST, id: "call-1" }));
      await a.ticket.settle(USAGE);
      const error = await w.gate.admit({ ...REQUEST, id: "call-1" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TollgateError);
      expect((error as TollgateError).code).toBe("RESERVATION_FINISHED");
      expect((await used(w, [KEY]))[0]).toBe("api_key:requests=1");
      expect((await spend(w, BUDGETS))[0]).toEqual([COST, 0]);
    });

    it("after the lease expired: a release is `expired` (nothing to undo), a settle still charges", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit(REQUEST));
      const b = admitted(await w.gate.admit(REQUEST));
      w.clock.now += 31_000; // the lease (30 s) and the holds are gone; the token window (60 s) is not
      expect(await a.ticket.release()).toEqual({ status: "expired" });
      expect(applied(await b.ticket.settle(USAGE)).cost).toBe(COST);
      // a's request and tokens stay counted (the store cannot know the admission applied); b's are settled
      expect(await used(w, [KEY])).toEqual([
        "api_key:requests=2",
        "api_key:tokens=8200",
        "api_key:max_parallel_requests=0",
      ]);
      expect((await spend(w, BUDGETS))[0]).toEqual([COST, 0]);
    });

    it("renew keeps a long stream's slot, holds and ticket past the lease TTL", async () => {
      const w = world(flat);
      const one = { ...KEY, maxParallel: 1 };
      const a = admitted(await w.gate.admit({ ...REQUEST, limits: [one] }));
      w.clock.now += 20_000;
      expect(await a.ticket.renew()).toBe(true);
      w.clock.now += 20_000; // 40 s after admission, 20 s after the renewal
      const d = await w.gate.admit({ ...REQUEST, limits: [one] });
      expect(d.ok === false && d.reason === "rate_limit" && d.denial.type).toBe("max_parallel_requests");
      expect((await spend(w, BUDGETS))[0]).toEqual([0, CENT]);
      expect(await a.ticket.release()).toMatchObject({ status: "applied" });
      w.clock.now += 1;
      admitted(await w.gate.admit({ ...REQUEST, limits: [one] }));
      w.clock.now += 30_001;
      const c = admitted(await w.gate.admit({ ...REQUEST, limits: [one], id: "late" }));
      w.clock.now += 30_001;
      expect(await c.ticket.renew()).toBe(false); // expired: not revived
    });
  });

  describe("denials consume nothing", () => {
    it("a rate-limit denial takes no budget hold; a budget denial counts no request", async () => {
      const w = world(flat);
      const one = { ...KEY, requests: 1 };
      admitted(await w.gate.admit({ ...REQUEST, limits: [one] }));
      const d = await w.gate.admit({ ...REQUEST, limits: [one] });
      expect(d.ok === false && d.reason === "rate_limit" && d.denial).toMatchObject({ type: "requests", limit: 1 });
      expect((await spend(w, BUDGETS))[0]).toEqual([0, CENT]);

      const tight = [{ ...BUDGETS[0]!, id: "k2", maxBudget: "0.015" }];
      admitted(await w.gate.admit({ ...REQUEST, limits: [TEAM], budgets: tight }));
      const e = await w.gate.admit({ ...REQUEST, limits: [TEAM], budgets: tight });
      expect(e.ok === false && e.reason === "budget" && e.denial).toMatchObject({
        budget: { scope: "key", id: "k2" },
        reserved: CENT,
        requested: CENT,
        max: 15_000_000,
      });
      expect((await used(w, [TEAM]))[0]).toBe("team:requests=1");
    });

    it("a rate limit and a budget both denying: the rate limit is reported (also a full in-flight gauge)", async () => {
      const w = world(flat);
      const tight = [{ ...BUDGETS[0]!, maxBudget: "0.015" }];
      const one = { ...KEY, maxParallel: 1 };
      admitted(await w.gate.admit({ ...REQUEST, limits: [one], budgets: tight }));
      // the store checks every window before gauges, so it names the budget first: the gate reports the gauge
      const d = await w.gate.admit({ ...REQUEST, limits: [one], budgets: tight });
      expect(d.ok === false && d.reason === "rate_limit" && d.denial).toMatchObject({
        type: "max_parallel_requests",
        retryAfterMs: 1000,
      });
      const two = { ...TEAM, requests: 1 };
      admitted(await w.gate.admit({ ...REQUEST, id: "x", limits: [two], budgets: [] }));
      const e = await w.gate.admit({ ...REQUEST, limits: [two], budgets: tight });
      expect(e.ok === false && e.reason).toBe("rate_limit");
      expect((await spend(w, tight))[0]).toEqual([0, CENT]);
    });

    it(`concurrent requests: a $0.50 budget admits exactly 50 of 100 $0.01 requests, a limit of 30 exactly 30`, async () => {
      const w = world(flat);
      const half = [{ ...BUDGETS[0]!, maxBudget: "0.50" }];
      const results = await Promise.all(
        Array.from({ length: 100 }, () => w.gate.admit({ ...REQUEST, limits: [TEAM], budgets: half })),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(50);
      expect((await spend(w, half))[0]).toEqual([0, 50 * CENT]);
      expect((await used(w, [TEAM]))[0]).toBe("team:requests=50");
      const thirty = { ...USER, requests: 30 };
      const more = await Promise.all(
        Array.from({ length: 100 }, () => w.gate.admit({ ...REQUEST, limits: [thirty], budgets: [] })),
      );
      expect(more.filter((r) => r.ok)).toHaveLength(30);
      await Promise.all(results.map((r) => r.ok && r.ticket.settle(USAGE)));
      expect((await spend(w, half))[0]).toEqual([50 * COST, 0]);
    });
  });

  describe("shrink to fit", () => {
    it("fits: one call; shrinks: one call per retry (here 2); cannot fit: one call", async () => {
      const w = world(flat, { budgets: { shrink: true } });
      const tight = [{ ...BUDGETS[0]!, maxBudget: "0.015" }];
      const req = { ...REQUEST, limits: [TEAM], budgets: tight };
      const a = admitted(await w.gate.admit(req));
      expect(w.calls.admit).toBe(1);
      expect(a).toMatchObject({ shrunk: false, maxTokens: 4000 });
      // $0.005 left: the $0.002 prompt and 1,500 output tokens at $0.000002 fit
      const b = admitted(await w.gate.admit(req));
      expect(w.calls.admit).toBe(3);
      expect(b).toMatchObject({ shrunk: true, maxTokens: 1500 });
      expect(b.ticket.tokens).toEqual({ input: 2000, output: 1500 });
      expect(b.ticket.reservedCost).toBe(5_000_000);
      const c = await w.gate.admit(req);
      expect(c.ok === false && c.reason).toBe("budget");
      expect(w.calls.admit).toBe(4);
      expect((await used(w, [TEAM]))[1]).toBe("team:tokens=9500"); // 6000 + 3500: the denied one counted nothing
    });
  });

  describe("nothing to count", () => {
    it("no limits and no budgets: the store's time, no ticket in the store; settle records the spend", async () => {
      const w = world(flat);
      const a = admitted(await w.gate.admit({ limits: [], model: "test-model", tokens: { input: 10, output: 10 } }));
      expect(a.now).toBe(T0);
      expect(w.calls).toEqual({ admit: flat ? 1 : 0, adjust: 0, renew: 0, read: flat ? 0 : 1 });
      const o = applied(await a.ticket.settle({ inputTokens: 10, outputTokens: 10 }));
      expect(o.cost).toBe(30_000);
      expect(w.records).toHaveLength(1);
      expect(w.calls.adjust).toBe(0);
      expect(await a.ticket.renew()).toBe(false); // finished
    });

    it("the object path asks the store's time once, then answers the last known one", async () => {
      const w = world(flat);
      await w.gate.admit({ limits: [] });
      await w.gate.admit(REQUEST);
      const before = snapshot(w);
      const a = admitted(await w.gate.admit({ limits: [scopes.user("u")] })); // a descriptor without limits
      expect(Math.abs(a.now - T0)).toBeLessThan(5_000);
      expect(w.calls.read).toBe(before.read);
      expect(w.calls.admit).toBe(before.admit + (flat ? 1 : 0));
    });
  });

  describe("check mode (LiteLLM's behaviour)", () => {
    it("holds nothing, denies once spend has reached the maximum, charges after the call", async () => {
      const w = world(flat, { budgets: { mode: "check" } });
      const tight = [{ ...BUDGETS[0]!, maxBudget: "0.001" }];
      const a = admitted(await w.gate.admit({ ...REQUEST, budgets: tight }));
      expect(a).toMatchObject({ maxTokens: null });
      expect(a.ticket.reservedCost).toBe(0);
      expect((await spend(w, tight))[0]).toEqual([0, 0]);
      await a.ticket.settle(USAGE);
      const d = await w.gate.admit({ ...REQUEST, budgets: tight });
      expect(d.ok === false && d.reason).toBe("budget");
      expect((await spend(w, tight))[0]).toEqual([COST, 0]);
    });
  });
});

describe("gate: bad input is a typed error, never a crash or a silent pass", () => {
  const store = createMemoryStore();
  it.each([
    ["createGate()", () => (createGate as (o?: unknown) => unknown)()],
    ["createGate({})", () => createGate({} as never)],
    ["leaseTtlMs 0", () => createGate({ store, leaseTtlMs: 0 })],
    ["ticketKeepMs -1", () => createGate({ store, ticketKeepMs: -1 })],
    ["parallelRetryAfterMs 1.5", () => createGate({ store, parallelRetryAfterMs: 1.5 })],
    ["createId 'x'", () => createGate({ store, createId: "x" as never })],
    ["budgets: mode 'maybe'", () => createGate({ store, budgets: { mode: "maybe" as never } })],
  ])("%s -> INVALID_ARGUMENT", (_name, call) => {
    expect(() => call()).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  const gate = createGate({ store, budgets: { prices: PRICES } });
  it.each([
    ["admit(undefined)", () => gate.admit(undefined as never), "INVALID_ARGUMENT"],
    ["limits not an array", () => gate.admit({ limits: KEY as never }), "INVALID_ARGUMENT"],
    ["id with a brace", () => gate.admit({ limits: [], id: "a{b}" }), "INVALID_ARGUMENT"],
    ["tokens -1", () => gate.admit({ limits: [KEY], tokens: -1 }), "INVALID_AMOUNT"],
    ["tokens { input: 1.5 }", () => gate.admit({ limits: [KEY], tokens: { input: 1.5, output: 0 } }), "INVALID_AMOUNT"],
    ["budgets without a model", () => gate.admit({ limits: [], budgets: BUDGETS }), "INVALID_ARGUMENT"],
    ["an unknown model", () => gate.admit({ limits: [], model: "nope", budgets: BUDGETS }), "UNKNOWN_MODEL"],
    ["a bad descriptor", () => gate.admit({ limits: [{ ...KEY, requests: -1 }] }), "INVALID_LIMIT"],
    ["restore(garbage)", async () => gate.restore({ v: 2 } as never), "INVALID_ARGUMENT"],
  ])("%s -> %s, nothing counted", async (_name, call, code) => {
    await expect(call()).rejects.toMatchObject({ code });
    expect(store.size).toBe(0);
    expect(store.ticketCount).toBe(0);
  });
});
