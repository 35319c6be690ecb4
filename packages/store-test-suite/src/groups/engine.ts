import { createLimiter, type Descriptor } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { type ContractContext, uid } from "../context.js";

/** The engine (`createLimiter`) on the store: exact concurrent admissions, the reservation's lifecycle. */
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

    it("settle, fail and release reconcile tokens and slots, each exactly once (typed outcomes)", async () => {
      const { store, W } = await ctx.setup();
      const limiter = createLimiter({ store });
      const d: Descriptor = { scope: "team", value: uid(), requests: 10, tokens: 1000, maxParallel: 1, windowMs: W };
      const used = async () => (await limiter.status([d])).map((s) => s.used);
      const a = await limiter.admit([d], { tokens: 300 });
      if (!a.ok) throw new Error("expected admission");
      expect(await a.reservation.settle({ tokens: 120 })).toEqual({ status: "applied" });
      expect(await a.reservation.settle({ tokens: 120 })).toEqual({ status: "duplicate" });
      expect(await a.reservation.release()).toEqual({ status: "duplicate" });
      expect(await used()).toEqual([1, 120, 0]);
      const b = await limiter.admit([d], { tokens: 200 });
      if (!b.ok) throw new Error("expected admission");
      expect(await b.reservation.release()).toEqual({ status: "applied" });
      expect(await b.reservation.release()).toEqual({ status: "duplicate" });
      expect(await used()).toEqual([1, 120, 0]);
      const c = await limiter.admit([d], { tokens: 200 });
      if (!c.ok) throw new Error("expected admission");
      expect(await c.reservation.renew()).toBe(true);
      expect(await c.reservation.fail({ tokens: 30 })).toEqual({ status: "applied" }); // the request stays counted
      expect(await used()).toEqual([2, 150, 0]);
    });

    it("the deprecated aliases answer booleans", async () => {
      const { store, W } = await ctx.setup();
      const limiter = createLimiter({ store });
      const d: Descriptor = { scope: "user", value: uid(), requests: 10, tokens: 1000, windowMs: W };
      const a = await limiter.admit([d], { tokens: 300 });
      if (!a.ok) throw new Error("expected admission");
      expect(await limiter.settle(a.reservation, { tokens: 120 })).toBe(true);
      expect(await limiter.settle(a.reservation, { tokens: 120 })).toBe(false);
      expect(await limiter.release(a.reservation)).toBe(false);
    });
  });
}
