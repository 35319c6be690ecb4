import { describe, expect, it } from "vitest";
import { type ContractContext, values, win } from "../context.js";

/** Adjustments: window guards, the floor at zero, unguarded deltas. */
export function adjustmentContract(ctx: ContractContext): void {
  describe("adjustments", () => {
    it("window-guarded delta applies in the window it was charged in, never below zero", async () => {
      const { store, key, W } = await ctx.setup();
      const r = await store.admit({
        windows: [
          win(key, W, [
            ["requests", 10, 1],
            ["tokens", 1000, 100],
          ]),
        ],
        gauges: [],
      });
      const start = r.windows[0]!.start;
      const spec = { key, windowMs: W, algorithm: "fixed" as const, expectStart: start };
      const up = await store.adjust({ windows: [{ ...spec, counters: [{ name: "tokens", delta: 150 }] }] });
      expect(up.applied).toEqual([true]);
      expect(up.windows[0]!.counters[0]!.value).toBe(250);
      const down = await store.adjust({ windows: [{ ...spec, counters: [{ name: "tokens", delta: -1000 }] }] });
      expect(down.windows[0]!.counters[0]!.value).toBe(0);
      expect(await values(store, key, W, ["requests", "tokens"])).toEqual([1, 0]);
    });

    it("a refund after the window rolled does not lower the new window", async () => {
      const { store, key, W, tick } = await ctx.setup();
      const batch = { windows: [win(key, W, [["tokens", 1000, 300]])], gauges: [] };
      const old = await store.admit(batch);
      await tick(W + 5);
      await store.admit(batch);
      const refund = await store.adjust({
        windows: [
          {
            key,
            windowMs: W,
            algorithm: "fixed",
            expectStart: old.windows[0]!.start,
            counters: [{ name: "tokens", delta: -300 }],
          },
        ],
      });
      expect(refund.applied).toEqual([false]);
      expect(await values(store, key, W, ["tokens"])).toEqual([300]);
    });

    it("an unguarded delta charges the current window, starting a fresh one when expired", async () => {
      const { store, key, W, tick } = await ctx.setup();
      await store.admit({
        windows: [
          win(key, W, [
            ["requests", 10, 4],
            ["tokens", 1000, 100],
          ]),
        ],
        gauges: [],
      });
      await tick(W + 5);
      const r = await store.adjust({
        windows: [
          {
            key,
            windowMs: W,
            algorithm: "fixed",
            counters: [
              { name: "requests", delta: 0 },
              { name: "tokens", delta: 70 },
            ],
          },
        ],
      });
      expect(r.applied).toEqual([true]);
      expect(r.windows[0]!.start).toBe(r.now);
      expect(r.windows[0]!.counters.map((c) => c.value)).toEqual([0, 70]);
    });
  });
}
