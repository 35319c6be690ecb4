import type { AdmitBatch } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { type ContractContext, gauge, inFlight, uid, values, win } from "../context.js";

/** Admission: limits, amounts, concurrency, all-or-nothing, shadow counters, read. */
export function admissionContract(ctx: ContractContext): void {
  describe("admission", () => {
    it("admits up to the limit, then denies naming the counter, its value and limit", async () => {
      const { store, key, W } = await ctx.setup();
      const batch = { windows: [win(key, W, [["requests", 3, 1]])], gauges: [] };
      for (let i = 1; i <= 3; i++) {
        const r = await store.admit(batch);
        expect(r.admitted).toBe(true);
        expect(r.windows[0]!.counters[0]!.value).toBe(i);
      }
      const denied = await store.admit(batch);
      expect(denied.admitted).toBe(false);
      expect(denied.denied).toEqual({ type: "counter", window: 0, counter: 0 });
      expect(denied.windows[0]!.counters[0]!.value).toBe(3);
      expect(await values(store, key, W)).toEqual([3]);
    });

    it("charges amounts and checks current + amount <= limit", async () => {
      const { store, key, W } = await ctx.setup();
      const ok = await store.admit({ windows: [win(key, W, [["tokens", 100, 60]])], gauges: [] });
      expect(ok.admitted).toBe(true);
      const over = await store.admit({ windows: [win(key, W, [["tokens", 100, 41]])], gauges: [] });
      expect(over.admitted).toBe(false);
      const exact = await store.admit({ windows: [win(key, W, [["tokens", 100, 40]])], gauges: [] });
      expect(exact.admitted).toBe(true);
      expect(exact.windows[0]!.counters[0]!.value).toBe(100);
    });

    it("denies a zero amount once the quota is exhausted, admits it below", async () => {
      const { store, key, W } = await ctx.setup();
      const zero = { windows: [win(key, W, [["tokens", 10, 0]])], gauges: [] };
      expect((await store.admit(zero)).admitted).toBe(true);
      await store.admit({ windows: [win(key, W, [["tokens", 10, 10]])], gauges: [] });
      expect((await store.admit(zero)).admitted).toBe(false);
    });

    it(`admits exactly 50 of ${ctx.concurrency} concurrent admissions against a limit of 50`, async () => {
      const { store, key, W } = await ctx.setup();
      const batch = {
        windows: [
          win(key, W, [
            ["requests", 50, 1],
            ["tokens", 1_000_000, 7],
          ]),
        ],
        gauges: [],
      };
      const results = await Promise.all(Array.from({ length: ctx.concurrency }, () => store.admit(batch)));
      expect(results.filter((r) => r.admitted)).toHaveLength(50);
      expect(await values(store, key, W, ["requests", "tokens"])).toEqual([50, 350]);
    });

    it("is all-or-nothing across descriptors: one over-limit window leaves every other counter untouched", async () => {
      const { store, W } = await ctx.setup();
      const [a, b, c] = [`{a:${uid()}}`, `{b:${uid()}}`, `{c:${uid()}}`];
      await store.admit({ windows: [win(b, W, [["requests", 1, 1]])], gauges: [] });
      const r = await store.admit({
        windows: [
          win(a, W, [
            ["requests", 10, 1],
            ["tokens", 100, 5],
          ]),
          win(b, W, [["requests", 1, 1]]),
          win(c, W, [["requests", 10, 1]]),
        ],
        gauges: [gauge(a, 5)],
        lease: { id: uid(), ttlMs: 60_000 },
      });
      expect(r.admitted).toBe(false);
      expect(r.denied).toEqual({ type: "counter", window: 1, counter: 0 });
      expect(await values(store, a, W, ["requests", "tokens"])).toEqual([0, 0]);
      expect(await values(store, b, W)).toEqual([1]);
      expect(await values(store, c, W)).toEqual([0]);
      expect(await inFlight(store, a)).toBe(0);
    });

    it("a gauge denial consumes no request or token", async () => {
      const { store, key, W } = await ctx.setup();
      const batch = (id: string): AdmitBatch => ({
        windows: [
          win(key, W, [
            ["requests", 100, 1],
            ["tokens", 1000, 10],
          ]),
        ],
        gauges: [gauge(key, 1)],
        lease: { id, ttlMs: 60_000 },
      });
      expect((await store.admit(batch("first"))).admitted).toBe(true);
      const r = await store.admit(batch("second"));
      expect(r.admitted).toBe(false);
      expect(r.denied).toEqual({ type: "gauge", gauge: 0 });
      expect(r.gauges[0]!.inFlight).toBe(1);
      expect(await values(store, key, W, ["requests", "tokens"])).toEqual([1, 10]);
    });

    it("shadow counters (enforce: false) are counted past the limit and never deny", async () => {
      const { store, key, W } = await ctx.setup();
      const batch = { windows: [win(key, W, [["requests", 2, 1, false]])], gauges: [] };
      for (let i = 0; i < 4; i++) expect((await store.admit(batch)).admitted).toBe(true);
      expect(await values(store, key, W)).toEqual([4]);
    });

    it("read changes nothing", async () => {
      const { store, key, W } = await ctx.setup();
      await store.admit({ windows: [win(key, W, [["requests", 5, 2]])], gauges: [] });
      await values(store, key, W);
      expect(await values(store, key, W)).toEqual([2]);
      const fresh = await store.read({
        windows: [{ key: `{none:${uid()}}`, windowMs: W, algorithm: "fixed", counters: ["requests"] }],
        gauges: [],
      });
      expect(fresh.windows[0]!.counters[0]).toEqual({ value: 0, previous: 0, held: 0 });
    });
  });
}
