import { createLimiter, type Descriptor } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { type ContractContext, uid } from "../context.js";

/** The engine (`createLimiter`) on the store: exact concurrent admissions, idempotent settle and release. */
export function engineContract(ctx: ContractContext): void {
  describe("engine on this store", () => {
    it(`the limiter admits exactly 50 of ${ctx.concurrency} concurrent requests; denials consume no tokens`, async () => {
      const { store, W } = await ctx.setup();
      const limiter = createLimiter({ store });
      const d: Descriptor = { scope: "api_key", value: uid(), requests: 50, tokens: 1_000_000, windowMs: W };
      const results = await Promise.all(
        Array.from({ length: ctx.concurrency }, () => limiter.admit([d], { tokens: 100 })),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(50);
      const [requests, tokens] = await limiter.status([d]);
      expect(requests).toMatchObject({ used: 50, remaining: 0 });
      expect(tokens).toMatchObject({ used: 5000 });
    });

    it("settle and release are idempotent and reconcile tokens", async () => {
      const { store, W } = await ctx.setup();
      const limiter = createLimiter({ store });
      const d: Descriptor = { scope: "team", value: uid(), requests: 10, tokens: 1000, maxParallel: 1, windowMs: W };
      const a = await limiter.admit([d], { tokens: 300 });
      if (!a.ok) throw new Error("expected admission");
      expect(await limiter.settle(a.reservation, { tokens: 120 })).toBe(true);
      expect(await limiter.settle(a.reservation, { tokens: 120 })).toBe(false);
      expect(await limiter.release(a.reservation)).toBe(false);
      expect((await limiter.status([d])).map((s) => s.used)).toEqual([1, 120, 0]);
      const b = await limiter.admit([d], { tokens: 200 });
      if (!b.ok) throw new Error("expected admission");
      expect(await limiter.release(b.reservation)).toBe(true);
      expect(await limiter.release(b.reservation)).toBe(false);
      expect((await limiter.status([d])).map((s) => s.used)).toEqual([1, 120, 0]);
    });
  });
}
