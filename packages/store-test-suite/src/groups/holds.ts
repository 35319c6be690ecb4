import type { AdmitBatch } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import type { ContractContext } from "../context.js";

/** Holds: counted until released or expired, read-back options, replacement under one lease id. */
export function holdContract(ctx: ContractContext): void {
  describe("holds", () => {
    /** Holds `amount` of a `spend` counter limited to 100 under lease `id`. */
    const spendHold = (key: string, W: number, id: string, amount: number): AdmitBatch => ({
      windows: [
        {
          key,
          windowMs: W,
          algorithm: "fixed",
          counters: [{ name: "spend", limit: 100, amount: 0, hold: amount, enforce: true }],
        },
      ],
      gauges: [],
      lease: { id, ttlMs: 60_000 },
    });

    it("a hold counts against the limit until released, and release frees it once", async () => {
      const { store, key, W } = await ctx.setup();
      const hold = (id: string, amount: number) => spendHold(key, W, id, amount);
      const a = await store.admit(hold("a", 70));
      expect(a.admitted).toBe(true);
      expect(a.windows[0]!.counters[0]).toMatchObject({ value: 0, held: 70 });
      expect((await store.admit(hold("b", 40))).admitted).toBe(false);
      const ref = { id: "a", gauges: [], holds: [{ key, name: "spend" }] };
      const settled = await store.adjust({
        windows: [
          {
            key,
            windowMs: W,
            algorithm: "fixed",
            expectStart: a.windows[0]!.start,
            counters: [{ name: "spend", delta: 55 }],
          },
        ],
        release: ref,
      });
      expect(settled.released).toBe(1);
      expect(settled.windows[0]!.counters[0]).toMatchObject({ value: 55, held: 0 });
      expect((await store.adjust({ windows: [], release: ref })).released).toBe(0);
      expect((await store.admit(hold("b", 45))).admitted).toBe(true);
      expect((await store.admit(hold("c", 1))).admitted).toBe(false);
    });

    it("readBack false: deltas, guards and the release behave the same; only the states may be left out", async () => {
      const { store, key, W } = await ctx.setup();
      const other = `${key}-b`;
      const a = await store.admit({
        windows: [
          {
            key,
            windowMs: W,
            algorithm: "fixed",
            counters: [
              { name: "tokens", limit: 1000, amount: 500, enforce: true },
              { name: "spend", limit: 100, amount: 0, hold: 40, enforce: true },
            ],
          },
          {
            key: other,
            windowMs: W,
            algorithm: "sliding",
            counters: [{ name: "tokens", limit: 1000, amount: 500, enforce: true }],
          },
        ],
        gauges: [],
        lease: { id: "L", ttlMs: 60_000 },
      });
      expect(a.admitted).toBe(true);
      const r = await store.adjust({
        readBack: false,
        windows: [
          {
            key,
            windowMs: W,
            algorithm: "fixed",
            expectStart: a.windows[0]!.start,
            counters: [{ name: "tokens", delta: -80 }],
          },
          // a guard that does not match: nothing applied to this window
          {
            key: other,
            windowMs: W,
            algorithm: "sliding",
            expectStart: a.windows[1]!.start - 1,
            counters: [{ name: "tokens", delta: -80 }],
          },
        ],
        release: { id: "L", gauges: [], holds: [{ key, name: "spend" }] },
      });
      expect(r.applied).toEqual([true, false]);
      expect(r.released).toBe(1);
      expect(Array.isArray(r.windows)).toBe(true);
      const after = await store.read({
        windows: [
          { key, windowMs: W, algorithm: "fixed", counters: ["tokens", "spend"] },
          { key: other, windowMs: W, algorithm: "sliding", counters: ["tokens"] },
        ],
        gauges: [],
      });
      expect(after.windows[0]!.counters.map((c) => [c.value, c.held])).toEqual([
        [420, 0],
        [0, 0],
      ]);
      expect(after.windows[1]!.counters[0]!.value).toBe(500);
      // A release alone, without read-back, still answers the clock and what it removed.
      const g = await store.admit({
        windows: [],
        gauges: [{ key, name: "max_parallel_requests", limit: 5, enforce: true }],
        lease: { id: "G", ttlMs: 60_000 },
      });
      const rel = await store.adjust({
        readBack: false,
        windows: [],
        release: { id: "G", gauges: [{ key, name: "max_parallel_requests" }], holds: [] },
      });
      expect(rel.released).toBe(1);
      expect(rel.now).toBeGreaterThanOrEqual(g.now);
      await expect(store.adjust({ windows: [], readBack: "no" as unknown as boolean })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    });

    it("a second hold under the same lease id replaces the first", async () => {
      const { store, key, W } = await ctx.setup();
      const hold = (id: string, amount: number) => spendHold(key, W, id, amount);
      expect((await store.admit(hold("a", 30))).windows[0]!.counters[0]!.held).toBe(30);
      const again = await store.admit(hold("a", 50));
      expect(again.admitted).toBe(true);
      expect(again.windows[0]!.counters[0]!.held).toBe(50);
      const query = { windows: [{ key, windowMs: W, algorithm: "fixed" as const, counters: ["spend"] }], gauges: [] };
      expect((await store.read(query)).windows[0]!.counters[0]!.held).toBe(50);
      expect((await store.admit(hold("b", 50))).admitted).toBe(true);
      expect((await store.admit(hold("c", 1))).admitted).toBe(false);
    });

    it("holds in a sliding window of several counters stay on their own counter", async () => {
      const { store, key, W } = await ctx.setup();
      const batch = (id: string, hold: number): AdmitBatch => ({
        windows: [
          {
            key,
            windowMs: W,
            algorithm: "sliding",
            counters: [
              { name: "requests", limit: 10, amount: 1, enforce: true },
              { name: "spend", limit: 100, amount: 0, hold, enforce: true },
            ],
          },
        ],
        gauges: [],
        lease: { id, ttlMs: 60_000 },
      });
      const a = await store.admit(batch("a", 70));
      expect(a.admitted).toBe(true);
      expect(a.windows[0]!.counters).toEqual([
        { value: 1, previous: 0, held: 0 },
        { value: 0, previous: 0, held: 70 },
      ]);
      const denied = await store.admit(batch("b", 40));
      expect(denied.admitted).toBe(false);
      expect(denied.denied).toEqual({ type: "counter", window: 0, counter: 1 });
      const query = {
        windows: [{ key, windowMs: W, algorithm: "sliding" as const, counters: ["requests", "spend"] }],
        gauges: [],
      };
      expect((await store.read(query)).windows[0]!.counters.map((c) => [c.value, c.held])).toEqual([
        [1, 0],
        [0, 70],
      ]);
      const settled = await store.adjust({
        windows: [
          {
            key,
            windowMs: W,
            algorithm: "sliding",
            expectStart: a.windows[0]!.start,
            counters: [{ name: "spend", delta: 55 }],
          },
        ],
        release: { id: "a", gauges: [], holds: [{ key, name: "spend" }] },
      });
      expect(settled.released).toBe(1);
      expect(settled.windows[0]!.counters[0]).toMatchObject({ value: 55, held: 0 });
      expect((await store.read(query)).windows[0]!.counters.map((c) => [c.value, c.held])).toEqual([
        [1, 0],
        [55, 0],
      ]);
    });

    it("an unreleased hold expires after its lease TTL", async () => {
      const { store, key, W, tick, injected } = await ctx.setup();
      const ttl = injected ? 30_000 : 300;
      const batch = (id: string): AdmitBatch => ({
        windows: [
          {
            key,
            windowMs: W * 10,
            algorithm: "fixed",
            counters: [{ name: "spend", limit: 10, amount: 0, hold: 10, enforce: true }],
          },
        ],
        gauges: [],
        lease: { id, ttlMs: ttl },
      });
      expect((await store.admit(batch("crashed"))).admitted).toBe(true);
      expect((await store.admit(batch("next"))).admitted).toBe(false);
      await tick(ttl + 5);
      expect((await store.admit(batch("next"))).admitted).toBe(true);
    });
  });
}
