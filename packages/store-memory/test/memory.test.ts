import { createLimiter, type Descriptor, TollgateError, type WindowOp } from "@tollgate/core";
import { FlatBatch, FlatResult } from "@tollgate/core/internal";
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

  describe("window handles (the engine's in-process path)", () => {
    const read = async (store: ReturnType<typeof createMemoryStore>, key: string) =>
      (
        await store.read({
          windows: [{ key, windowMs: 60_000, algorithm: "fixed", counters: ["requests"] }],
          gauges: [],
        })
      ).windows[0]!.counters[0]!.value;

    it("a handle to a window the LRU dropped is not used: the key gets a fresh window that counts", async () => {
      const store = createMemoryStore({ maxEntries: 4 });
      const limiter = createLimiter({ store });
      const hot: Descriptor = { scope: "api_key", value: "a", requests: 100 };
      await limiter.admit([hot]); // the limiter now holds a handle to {api_key:a}
      for (let i = 0; i < 10; i++) await limiter.admit([{ scope: "user", value: `u${i}`, requests: 100 }]);
      expect(await read(store, "{api_key:a}")).toBe(0); // evicted
      const a = await limiter.admit([hot]);
      expect(a.ok).toBe(true);
      expect(await read(store, "{api_key:a}")).toBe(1); // counted in the live window, not the dropped one
      expect(store.size).toBe(4);
    });

    it("a window used at least once every maxEntries/2 operations is never evicted, however many keys churn", async () => {
      const store = createMemoryStore({ maxEntries: 10 });
      const limiter = createLimiter({ store });
      const hot: Descriptor = { scope: "api_key", value: "hot", requests: 1_000_000 };
      let admitted = 0;
      for (let i = 0; i < 2000; i++) {
        // 4 distinct cold keys between two uses of the hot one: under maxEntries/2 = 5 operations
        if (i % 5 === 0) admitted += (await limiter.admit([hot])).ok ? 1 : 0;
        else await limiter.admit([{ scope: "user", value: `cold${i}`, requests: 1 }]);
      }
      expect(admitted).toBe(400);
      expect(await read(store, "{api_key:hot}")).toBe(400);
      expect(store.size).toBe(10);
    });

    it("in-flight gauges reached through handles stay exact, also after the LRU dropped them", async () => {
      const store = createMemoryStore({ maxEntries: 4 });
      const limiter = createLimiter({ store });
      const key: Descriptor = { scope: "api_key", value: "k", maxParallel: 2 };
      const first = await limiter.admit([key]);
      const second = await limiter.admit([key]);
      expect([first.ok, second.ok, (await limiter.admit([key])).ok]).toEqual([true, true, false]);
      if (!first.ok || !second.ok) throw new Error("unreachable");
      await limiter.settle(first.reservation, { tokens: 0 }); // released through the gauge's handle
      const third = await limiter.admit([key]);
      expect(third.ok).toBe(true);
      expect((await limiter.admit([key])).ok).toBe(false);
      // push the gauge out of the store: its leases are forgotten, the handles are dead
      for (let i = 0; i < 8; i++) await limiter.admit([{ scope: "user", value: `u${i}`, maxParallel: 5 }]);
      await limiter.settle(second.reservation, { tokens: 0 }); // releases nothing that exists any more
      const again = await Promise.all([limiter.admit([key]), limiter.admit([key]), limiter.admit([key])]);
      expect(again.map((a) => a.ok)).toEqual([true, true, false]);
    });

    it("handles of two limiters sharing one store count in the same windows", async () => {
      const store = createMemoryStore({ maxEntries: 3 });
      const one = createLimiter({ store });
      const two = createLimiter({ store });
      const key: Descriptor = { scope: "team", value: "t", requests: 7 };
      let ok = 0;
      for (let i = 0; i < 20; i++) {
        ok += (await (i % 2 === 0 ? one : two).admit([key])).ok ? 1 : 0;
        if (i % 3 === 0) await one.admit([{ scope: "user", value: `u${i}`, requests: 1 }]);
      }
      expect(ok).toBe(7);
      expect(await read(store, "{team:t}")).toBe(7);
    });
  });

  it("gauges count live leases exactly under mixed TTLs, renewals, releases and a clock that goes back", async () => {
    // Model check: 3,000 random operations on one gauge, each compared with a brute-force count.
    let now = 1_000_000;
    const store = createMemoryStore({ now: () => now });
    const model = new Map<string, number>(); // lease id -> expiry
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const gauge = { key: "{key:k}", name: "max_parallel_requests" };
    const expected = () => {
      const live = [...model.values()].filter((e) => e > now);
      return { inFlight: live.length, earliestExpiry: live.length > 0 ? Math.min(...live) : null };
    };
    const ids = Array.from({ length: 40 }, (_, i) => `l${i}`);
    for (let step = 0; step < 3000; step++) {
      const op = rand(10);
      const id = ids[rand(ids.length)]!;
      const ttl = [100, 500, 2000][rand(3)]!;
      if (op < 4) {
        // An admission drops the gauge's expired leases (for good: they stay gone if the clock goes back).
        for (const [l, e] of model) if (e <= now) model.delete(l);
        const before = expected();
        const r = await store.admit({
          windows: [],
          gauges: [{ ...gauge, limit: 25, enforce: true }],
          lease: { id, ttlMs: ttl },
        });
        const live = (model.get(id) ?? 0) > now;
        expect(r.admitted).toBe(live || before.inFlight + 1 <= 25);
        if (r.admitted) model.set(id, now + ttl);
        expect(r.gauges[0]).toEqual(expected());
      } else if (op < 6) {
        const renewed = await store.renew({ id, gauges: [gauge], holds: [] }, ttl);
        const live = (model.get(id) ?? 0) > now;
        expect(renewed).toBe(live ? 1 : 0);
        if (live) model.set(id, now + ttl);
      } else if (op < 8) {
        const r = await store.adjust({ windows: [], release: { id, gauges: [gauge], holds: [] } });
        expect(r.released).toBe((model.get(id) ?? 0) > now ? 1 : 0);
        model.delete(id);
      } else {
        now += op === 8 ? rand(300) : -rand(200); // mostly forward, sometimes back
      }
      const read = await store.read({ windows: [], gauges: [gauge] });
      expect(read.gauges[0]).toEqual(expected());
    }
  });

  it("holds sum live holds exactly under mixed TTLs, renewals, releases and a clock that goes back", async () => {
    // Model check, as for gauges: holds of up to 12 leases on one counter (the first kept inline, the others in a
    // map, a kept sum and a lower bound of their expiries), each step compared with a brute-force sum.
    let now = 1_000_000;
    const store = createMemoryStore({ now: () => now });
    const model = new Map<string, { amount: number; expiry: number }>();
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const key = "{budget:k}";
    const spend = (hold: number) => ({
      key,
      windowMs: 10_000_000,
      algorithm: "fixed" as const,
      counters: [{ name: "spend", limit: 1_000_000, amount: 0, hold, enforce: true }],
    });
    const expected = () => [...model.values()].filter((h) => h.expiry > now).reduce((s, h) => s + h.amount, 0);
    const ids = Array.from({ length: 12 }, (_, i) => `h${i}`);
    let admitted = 0;
    for (let step = 0; step < 4000; step++) {
      const op = rand(10);
      const id = ids[rand(ids.length)]!;
      const ttl = [100, 500, 2000][rand(3)]!;
      if (op < 4) {
        // an admission drops the counter's expired holds for good
        for (const [l, h] of model) if (h.expiry <= now) model.delete(l);
        const amount = 1 + rand(50_000);
        const before = expected();
        const r = await store.admit({ windows: [spend(amount)], gauges: [], lease: { id, ttlMs: ttl } });
        const prior = model.get(id)?.amount ?? 0;
        expect(r.admitted).toBe(before - prior + amount <= 1_000_000);
        if (r.admitted) {
          admitted++;
          model.set(id, { amount, expiry: now + ttl });
        }
        expect(r.windows[0]!.counters[0]!.held).toBe(expected());
      } else if (op < 6) {
        const renewed = await store.renew({ id, gauges: [], holds: [{ key, name: "spend" }] }, ttl);
        const h = model.get(id);
        const live = h !== undefined && h.expiry > now;
        expect(renewed).toBe(live ? 1 : 0);
        if (live) h.expiry = now + ttl;
      } else if (op < 8) {
        const r = await store.adjust({ windows: [], release: { id, gauges: [], holds: [{ key, name: "spend" }] } });
        expect(r.released).toBe((model.get(id)?.expiry ?? 0) > now ? 1 : 0);
        model.delete(id);
      } else {
        now += op === 8 ? rand(300) : -rand(200); // mostly forward, sometimes back
      }
      const read = await store.read({
        windows: [{ key, windowMs: 10_000_000, algorithm: "fixed", counters: ["spend"] }],
        gauges: [],
      });
      expect(read.windows[0]!.counters[0]!.held).toBe(expected());
    }
    expect(admitted).toBeGreaterThan(1000); // the walk did exercise admissions
  });

  describe("tickets (contract 2) stay bounded", () => {
    const ticketed = (id: string, ttlMs = 60_000) => ({
      windows: [win("{t}", 1_000_000)],
      gauges: [],
      lease: { id, ttlMs },
      ticket: true,
    });
    const finish = (id: string, finish: "settle" | "release", keepMs = 60_000) => ({
      windows: [
        { key: "{t}", windowMs: 60_000, algorithm: "fixed" as const, counters: [{ name: "requests", delta: -1 }] },
      ],
      release: { id, gauges: [], holds: [], windows: ["{t}"] },
      ticket: { id, finish, keepMs },
    });

    it("beyond maxTickets the oldest finished tickets are forgotten; open ones are kept for their lease", async () => {
      const now = 1_000_000;
      const store = createMemoryStore({ now: () => now, maxTickets: 10 });
      for (let i = 0; i < 5; i++) expect((await store.admit(ticketed(`open-${i}`))).admitted).toBe(true);
      for (let i = 0; i < 200; i++) {
        await store.admit(ticketed(`done-${i}`));
        expect((await store.adjust(finish(`done-${i}`, "settle"))).ticket).toBe("open");
        expect(store.ticketCount).toBeLessThanOrEqual(5 + 10 + 1);
      }
      // the newest finished tickets are still recognised, the oldest were forgotten
      expect((await store.adjust(finish("done-199", "settle"))).ticket).toBe("finished");
      expect((await store.adjust(finish("done-0", "release"))).ticket).toBe("unknown");
      // every open ticket is still there for its release
      for (let i = 0; i < 5; i++) expect((await store.adjust(finish(`open-${i}`, "release"))).ticket).toBe("open");
    });

    it("expired tickets are dropped as new ones arrive: open ones after their lease, finished after keepMs", async () => {
      let now = 1_000_000;
      const store = createMemoryStore({ now: () => now });
      for (let i = 0; i < 1000; i++) await store.admit(ticketed(`crashed-${i}`, 1_000)); // never finished
      for (let i = 0; i < 1000; i++) {
        await store.admit(ticketed(`ok-${i}`, 1_000));
        await store.adjust(finish(`ok-${i}`, "settle", 5_000));
      }
      expect(store.ticketCount).toBe(2000);
      now += 10_000;
      for (let i = 0; i < 1000; i++) await store.admit(ticketed(`later-${i}`));
      expect(store.ticketCount).toBe(1000);
      expect((await store.adjust(finish("ok-5", "release"))).ticket).toBe("unknown");
    });

    it("a renewed ticket goes to the back: a long stream does not hold up dropping the others", async () => {
      let now = 1_000_000;
      const store = createMemoryStore({ now: () => now });
      await store.admit(ticketed("stream", 1_000));
      for (let i = 0; i < 100; i++) await store.admit(ticketed(`short-${i}`, 1_000));
      for (let round = 0; round < 5; round++) {
        now += 600;
        expect(await store.renew({ id: "stream", gauges: [], holds: [] }, 1_000)).toBe(1);
      }
      for (let i = 0; i < 100; i++) await store.admit(ticketed(`next-${i}`));
      expect(store.ticketCount).toBe(101); // the stream and the next 100
      expect((await store.adjust(finish("stream", "release"))).ticket).toBe("open");
    });
  });

  it("a handle passed without a guard is only a hint: the delta goes to the key's live window", async () => {
    const store = createMemoryStore({ now: () => 1_000_000 });
    const b = new FlatBatch();
    const r = new FlatResult();
    b.reset();
    b.window("{a}", 60_000, false);
    b.counter("tokens", 1000, 10, 0, true);
    b.window("{b}", 60_000, false);
    b.counter("tokens", 1000, 20, 0, true);
    store.admitFlat(b, r);
    const handleOfA = r.handles[0];
    // an unguarded delta to {b} carrying {a}'s handle: {b} is charged, {a} is untouched
    b.reset();
    b.window("{b}", 60_000, false, handleOfA);
    b.counter("tokens", 0, 5, 0, true);
    store.adjustFlat(b, r);
    const read = await store.read({
      windows: ["{a}", "{b}"].map((key) => ({
        key,
        windowMs: 60_000,
        algorithm: "fixed" as const,
        counters: ["tokens"],
      })),
      gauges: [],
    });
    expect(read.windows.map((w) => w.counters[0]!.value)).toEqual([10, 25]);
  });
});
