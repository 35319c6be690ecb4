import { describe, expect, it } from "vitest";
import { type ContractContext, win } from "../context.js";

/** Isolation by prefix and the store's lifecycle. */
export function isolationContract(ctx: ContractContext): void {
  describe("isolation and lifecycle", () => {
    it("two prefixes on one backend never see each other's counters", async () => {
      const one = await ctx.setup();
      const two = await ctx.setup(); // its own prefix; `one.key` names the same window in both
      const batch = { windows: [win(one.key, one.W, [["requests", 1, 1]])], gauges: [] };
      expect((await one.store.admit(batch)).admitted).toBe(true);
      expect((await two.store.admit(batch)).admitted).toBe(true);
      expect((await one.store.admit(batch)).admitted).toBe(false);
    });

    it("close is idempotent", async () => {
      const { store } = await ctx.setup();
      await store.close();
      await store.close();
    });
  });
}
