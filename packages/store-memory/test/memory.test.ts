import { TollgateError, type WindowOp } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { createMemoryStore } from "../src/index.js";

const win = (key: string, limit: number): WindowOp => ({
  key,
  windowMs: 60_000,
  algorithm: "fixed",
  counters: [{ name: "requests", limit, amount: 1, enforce: true }],
});

describe("memory store", () => {
  it("stays bounded: distinct scopes beyond maxEntries evict the least recently used", async () => {
    const store = createMemoryStore({ maxEntries: 100 });
    for (let i = 0; i < 1000; i++) await store.admit({ windows: [win(`{k:${i}}`, 5)], gauges: [] });
    expect(store.size).toBe(100);
    // the newest scope is still counted, the oldest was forgotten
    const read = await store.read({
      windows: [
        { key: "{k:999}", windowMs: 60_000, algorithm: "fixed", counters: ["requests"] },
        { key: "{k:0}", windowMs: 60_000, algorithm: "fixed", counters: ["requests"] },
      ],
      gauges: [],
    });
    expect(read.windows.map((w) => w.counters[0]!.value)).toEqual([1, 0]);
  });

  it("is atomic by construction: a batch runs to completion before any other call sees it", async () => {
    const store = createMemoryStore();
    // Start 500 admissions without awaiting: each runs synchronously up to its first await, so each sees the
    // previous one's full effect. Interleaving would admit more than the limit.
    const pending = Array.from({ length: 500 }, (_, i) =>
      store.admit({ windows: [win("{shared}", 100), win(`{own:${i % 7}}`, 1000)], gauges: [] }),
    );
    const results = await Promise.all(pending);
    expect(results.filter((r) => r.admitted)).toHaveLength(100);
    // and the admitted ones saw strictly increasing values: no two decisions read the same state
    const seen = results.filter((r) => r.admitted).map((r) => r.windows[0]!.counters[0]!.value);
    expect(new Set(seen).size).toBe(100);
    expect(Math.max(...seen)).toBe(100);
  });

  it("uses the injected clock", async () => {
    let now = 1_000;
    const store = createMemoryStore({ now: () => now });
    const r = await store.admit({ windows: [win("{a}", 1)], gauges: [] });
    expect(r.now).toBe(1_000);
    expect(r.windows[0]!.start).toBe(1_000);
    now += 60_000;
    expect((await store.admit({ windows: [win("{a}", 1)], gauges: [] })).windows[0]!.start).toBe(61_000);
  });

  it("rejects a bad maxEntries with a typed error", () => {
    expect(() => createMemoryStore({ maxEntries: 0 })).toThrow(TollgateError);
    expect(() => createMemoryStore({ maxEntries: 1.5 })).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  it("throws STORE_CLOSED after close", async () => {
    const store = createMemoryStore();
    await store.close();
    await expect(store.admit({ windows: [win("{a}", 1)], gauges: [] })).rejects.toMatchObject({ code: "STORE_CLOSED" });
  });
});
