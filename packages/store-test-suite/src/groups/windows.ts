import type { AdmitResult } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { type ContractContext, win } from "../context.js";

/** Fixed and sliding windows: anchoring, rolling, weighting of the previous window. */
export function windowContract(ctx: ContractContext): void {
  describe("windows", () => {
    it("fixed window: anchored at first use, rolls every counter together after windowMs", async () => {
      const { store, key, W, tick } = await ctx.setup();
      const batch = {
        windows: [
          win(key, W, [
            ["requests", 2, 1],
            ["tokens", 100, 50],
          ]),
        ],
        gauges: [],
      };
      const first = await store.admit(batch);
      expect(first.windows[0]!.start).toBe(first.now);
      await store.admit(batch);
      expect((await store.admit(batch)).admitted).toBe(false);
      await tick(W + 5);
      const after = await store.admit(batch);
      expect(after.admitted).toBe(true);
      expect(after.windows[0]!.start).toBe(after.now);
      expect(after.windows[0]!.counters.map((c) => c.value)).toEqual([1, 50]);
    });

    it("fixed window: still closed one moment before it ends", async () => {
      const { store, key, W, tick, injected } = await ctx.setup();
      const batch = { windows: [win(key, W, [["requests", 1, 1]])], gauges: [] };
      const first = await store.admit(batch);
      await tick(injected ? W - 1 : Math.floor(W / 2));
      const r = await store.admit(batch);
      expect(r.admitted).toBe(false);
      expect(r.windows[0]!.start).toBe(first.windows[0]!.start);
    });

    it("sliding window: the previous window counts by its remaining overlap", async () => {
      const { store, key, W, tick, injected } = await ctx.setup();
      const batch = { windows: [win(key, W, [["requests", 10, 1]], "sliding")], gauges: [] };
      const first = await store.admit(batch);
      const start = first.windows[0]!.start;
      for (let i = 1; i < 10; i++) await store.admit(batch);
      expect((await store.admit(batch)).admitted).toBe(false);
      await tick(W + W / 2);
      let admitted = 0;
      let last: AdmitResult | undefined;
      for (let i = 0; i < 12; i++) {
        last = await store.admit(batch);
        const s = last.windows[0]!;
        expect(s.start).toBe(start + W);
        expect(s.counters[0]!.previous).toBe(10);
        if (!last.admitted) break;
        admitted++;
      }
      expect(last?.admitted).toBe(false);
      const s = last!.windows[0]!;
      const weighted = (10 * (W - (last!.now - s.start))) / W;
      expect(weighted + s.counters[0]!.value + 1).toBeGreaterThan(10); // the denial is consistent with the formula
      if (injected)
        expect(admitted).toBe(5); // 10 × 0.5 = 5 still count, 5 fit
      else expect(admitted).toBeGreaterThanOrEqual(5);
    });

    it("sliding window: two windows later nothing of the past counts", async () => {
      const { store, key, W, tick } = await ctx.setup();
      const batch = { windows: [win(key, W, [["requests", 3, 1]], "sliding")], gauges: [] };
      for (let i = 0; i < 3; i++) await store.admit(batch);
      await tick(2 * W + 5);
      const r = await store.admit(batch);
      expect(r.admitted).toBe(true);
      expect(r.windows[0]!.counters[0]).toMatchObject({ value: 1, previous: 0 });
      expect(r.windows[0]!.start).toBe(r.now);
    });
  });
}
