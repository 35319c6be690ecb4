import type { CounterStore } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { type ContractContext, gauge, inFlight } from "../context.js";

/** Leases: one slot per lease, idempotent release, TTL expiry and renewal. */
export function leaseContract(ctx: ContractContext): void {
  describe("leases", () => {
    const take = (store: CounterStore, key: string, limit: number, id: string, ttlMs = 60_000) =>
      store.admit({ windows: [], gauges: [gauge(key, limit)], lease: { id, ttlMs } });

    it("takes one slot per lease up to the limit; release by id is idempotent and an unknown id frees nothing", async () => {
      const { store, key } = await ctx.setup();
      expect((await take(store, key, 2, "l1")).admitted).toBe(true);
      const second = await take(store, key, 2, "l2");
      expect(second.admitted).toBe(true);
      expect(second.gauges[0]!.inFlight).toBe(2);
      expect((await take(store, key, 2, "l3")).admitted).toBe(false);
      const ref = (id: string) => ({ id, gauges: [{ key, name: "max_parallel_requests" }], holds: [] });
      expect((await store.adjust({ windows: [], release: ref("unknown") })).released).toBe(0);
      expect(await inFlight(store, key)).toBe(2);
      expect((await store.adjust({ windows: [], release: ref("l1") })).released).toBe(1);
      expect((await store.adjust({ windows: [], release: ref("l1") })).released).toBe(0);
      expect(await inFlight(store, key)).toBe(1);
      expect((await take(store, key, 2, "l3")).admitted).toBe(true);
    });

    it(`admits exactly 10 of ${ctx.concurrency} concurrent leases against max 10`, async () => {
      const { store, key } = await ctx.setup();
      const results = await Promise.all(
        Array.from({ length: ctx.concurrency }, (_, i) => take(store, key, 10, `c${i}`)),
      );
      expect(results.filter((r) => r.admitted)).toHaveLength(10);
      expect(await inFlight(store, key)).toBe(10);
    });

    it("a lease never released frees its slot after the TTL; renew keeps a live one", async () => {
      const { store, key, tick, injected } = await ctx.setup();
      const ttl = injected ? 30_000 : 400;
      expect((await take(store, key, 2, "crashed", ttl)).admitted).toBe(true);
      expect((await take(store, key, 2, "streaming", ttl)).admitted).toBe(true);
      await tick(ttl * 0.6);
      const ref = { id: "streaming", gauges: [{ key, name: "max_parallel_requests" }], holds: [] };
      expect(await store.renew(ref, ttl)).toBe(1);
      await tick(ttl * 0.6);
      expect(await inFlight(store, key)).toBe(1); // crashed expired, streaming renewed
      await tick(ttl * 0.6);
      expect(await inFlight(store, key)).toBe(0);
      expect(await store.renew(ref, ttl)).toBe(0); // an expired lease is not revived
    });
  });
}
