import { type AdjustBatch, type AdmitBatch, TollgateError } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { type ContractContext, gauge, uid, values, win } from "../context.js";

/** Bad input: typed errors, nothing changed. */
export function badInputContract(ctx: ContractContext): void {
  describe("bad input gets a typed error and changes nothing", () => {
    const cases: Array<[string, (key: string) => AdmitBatch, string]> = [
      ["negative limit", (k) => ({ windows: [win(k, 1000, [["requests", -1, 1]])], gauges: [] }), "INVALID_LIMIT"],
      ["NaN limit", (k) => ({ windows: [win(k, 1000, [["requests", Number.NaN, 1]])], gauges: [] }), "INVALID_LIMIT"],
      ["fractional limit", (k) => ({ windows: [win(k, 1000, [["requests", 1.5, 1]])], gauges: [] }), "INVALID_LIMIT"],
      ["zero window", (k) => ({ windows: [win(k, 0, [["requests", 5, 1]])], gauges: [] }), "INVALID_WINDOW"],
      ["negative window", (k) => ({ windows: [win(k, -5, [["requests", 5, 1]])], gauges: [] }), "INVALID_WINDOW"],
      ["negative amount", (k) => ({ windows: [win(k, 1000, [["requests", 5, -1]])], gauges: [] }), "INVALID_AMOUNT"],
      ["empty key", () => ({ windows: [win("", 1000, [["requests", 5, 1]])], gauges: [] }), "INVALID_SCOPE"],
      ["gauge without a lease", (k) => ({ windows: [], gauges: [gauge(k, 5)] }), "INVALID_ARGUMENT"],
      [
        "a counter named window (the window key)",
        (k) => ({ windows: [win(k, 1000, [["window", 5, 1]])], gauges: [] }),
        "INVALID_ARGUMENT",
      ],
      [
        "the same window twice in one batch",
        (k) => ({ windows: [win(k, 1000, [["requests", 5, 1]]), win(k, 1000, [["requests", 5, 1]])], gauges: [] }),
        "INVALID_ARGUMENT",
      ],
    ];
    for (const [what, make, code] of cases) {
      it(what, async () => {
        const { store, key } = await ctx.setup();
        const good = win(key, 1000, [["requests", 5, 1]]);
        const bad = make(`{bad:${uid()}}`);
        const error = await store.admit({ ...bad, windows: [good, ...bad.windows] }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TollgateError);
        expect((error as TollgateError).code).toBe(code);
        expect(await values(store, key, 1000)).toEqual([0]);
      });
    }
  });

  describe("an adjustment naming a window or counter twice gets INVALID_ARGUMENT and changes nothing", () => {
    const twice: Array<[string, (key: string, W: number) => AdjustBatch]> = [
      [
        "the same window twice",
        (key, W) => ({
          windows: [
            { key, windowMs: W, algorithm: "fixed", counters: [{ name: "requests", delta: -1 }] },
            { key, windowMs: W, algorithm: "fixed", counters: [{ name: "requests", delta: -1 }] },
          ],
        }),
      ],
      [
        "the same counter twice in one window",
        (key, W) => ({
          windows: [
            {
              key,
              windowMs: W,
              algorithm: "fixed",
              counters: [
                { name: "requests", delta: -5 },
                { name: "requests", delta: -2 },
              ],
            },
          ],
        }),
      ],
    ];
    for (const [what, make] of twice) {
      it(what, async () => {
        const { store, key, W } = await ctx.setup();
        expect((await store.admit({ windows: [win(key, W, [["requests", 10, 6]])], gauges: [] })).admitted).toBe(true);
        const error = await store.adjust(make(key, W)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TollgateError);
        expect((error as TollgateError).code).toBe("INVALID_ARGUMENT");
        expect(await values(store, key, W)).toEqual([6]);
      });
    }
  });
}
