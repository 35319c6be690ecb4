import type { AdjustBatch } from "@tollgate/core";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { decodeAdjust, encodeAdjust } from "../src/index.js";

const redis = new Redis(inject("redis").url);
afterAll(async () => {
  await redis.quit();
});

const uid = (): string => Math.random().toString(36).slice(2, 10);
const NOW = 1_000_000;

async function adjust(prefix: string, batch: AdjustBatch) {
  const call = encodeAdjust(batch, { prefix, testNowMs: NOW });
  const reply = await redis.eval(call.script.source, call.keys.length, ...call.keys, ...call.args);
  return decodeAdjust(batch, reply);
}

async function errorOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => "no error",
    (e: unknown) => String(e),
  );
}

const spend = (key: string, delta: number): AdjustBatch["windows"][number] => ({
  key,
  windowMs: 60_000,
  algorithm: "fixed",
  counters: [{ name: "spend", delta }],
});

describe("adjust: released holds", () => {
  it("a hold on an adjusted counter is pruned, released and answered once", async () => {
    const prefix = `tgtest:${uid()}:`;
    const key = `{b:${uid()}}`;
    const c = `${prefix}${key}:spend`;
    await redis.set(`${prefix}${key}:window`, String(NOW - 1000));
    await redis.set(c, "5");
    await redis.zadd(`${c}:holds`, NOW + 5000, "mine", NOW + 5000, "other", NOW - 1, "gone");
    await redis.hset(`${c}:held`, "mine", "7", "other", "3", "gone", "100");
    const r = await adjust(prefix, {
      windows: [spend(key, 4)],
      release: { id: "mine", gauges: [], holds: [{ key, name: "spend" }] },
    });
    expect(r.released).toBe(1);
    expect(r.applied).toEqual([true]);
    expect(r.windows[0]!.counters[0]).toEqual({ value: 9, previous: 0, held: 3 });
    expect(await redis.zrange(`${c}:holds`, 0, -1)).toEqual(["other"]);
    expect(await redis.hgetall(`${c}:held`)).toEqual({ other: "3" });
  });

  it("a released hold no window reads is still type-checked before the first write", async () => {
    const prefix = `tgtest:${uid()}:`;
    const key = `{b:${uid()}}`;
    const other = `{b:${uid()}}`;
    await redis.set(`${prefix}${key}:window`, String(NOW - 1000));
    await redis.set(`${prefix}${key}:spend`, "5");
    const batch: AdjustBatch = {
      windows: [spend(key, 4)],
      release: { id: "mine", gauges: [], holds: [{ key: other, name: "spend" }] },
    };

    await redis.set(`${prefix}${other}:spend:holds`, "x");
    expect(await errorOf(adjust(prefix, batch))).toContain("WRONGTYPE");
    await redis.del(`${prefix}${other}:spend:holds`);
    await redis.hset(`${prefix}${other}:spend:held`, "mine", "lots");
    expect(await errorOf(adjust(prefix, batch))).toContain("TOLLGATE_CORRUPT");
    expect(await redis.get(`${prefix}${key}:spend`)).toBe("5");
  });

  it("a corrupt hold on an adjusted counter fails before the first write", async () => {
    const prefix = `tgtest:${uid()}:`;
    const key = `{b:${uid()}}`;
    const c = `${prefix}${key}:spend`;
    await redis.set(`${prefix}${key}:window`, String(NOW - 1000));
    await redis.set(c, "5");
    await redis.zadd(`${c}:holds`, NOW + 5000, "mine");
    await redis.hset(`${c}:held`, "mine", "lots");
    const batch: AdjustBatch = {
      windows: [spend(key, 4)],
      release: { id: "mine", gauges: [], holds: [{ key, name: "spend" }] },
    };
    expect(await errorOf(adjust(prefix, batch))).toContain("TOLLGATE_CORRUPT");
    expect(await redis.get(c)).toBe("5");
    expect(await redis.zrange(`${c}:holds`, 0, -1)).toEqual(["mine"]);
  });
});

describe("adjust: the lean settle (the engine's settle: ticket, no read-back, fixed windows guarded by their start)", () => {
  const settle = (prefix: string, id: string, windows: AdjustBatch["windows"], testNowMs = NOW) => {
    const batch: AdjustBatch = { readBack: false, windows };
    const call = encodeAdjust(
      batch,
      { prefix, testNowMs },
      { key: `${prefix}ticket:${id}`, mode: "settle", keepMs: 60_000 },
    );
    return { batch, call };
  };
  const run = async (c: ReturnType<typeof settle>) =>
    decodeAdjust(c.batch, await redis.eval(c.call.script.source, c.call.keys.length, ...c.call.keys, ...c.call.args));
  const guarded = (key: string, start: number, deltas: Record<string, number>) => ({
    key,
    windowMs: 60_000,
    algorithm: "fixed" as const,
    expectStart: start,
    noHolds: true,
    counters: Object.entries(deltas).map(([name, delta]) => ({ name, delta })),
  });

  it("is the form chosen for that shape, and not for a sliding window, a release or read-back", () => {
    const lean = settle("p:", "x", [guarded("{a}", 5, { tokens: 3, requests: 0 })]).call;
    // Ticket, window start, the one counter with a delta (zero deltas are left out).
    expect(lean.keys).toEqual(["p:ticket:x", "p:{a}:window", "p:{a}:tokens"]);
    expect(lean.args.slice(4)).toEqual(["5", ((5 + 60_000) * 64 + 1).toString(36), (6).toString(36)]);
    const sliding = encodeAdjust(
      { readBack: false, windows: [{ ...guarded("{a}", 5, { tokens: 3 }), algorithm: "sliding" }] },
      { prefix: "p:" },
      { key: "p:ticket:x", mode: "settle", keepMs: 1000 },
    );
    expect(sliding.args[4]).not.toBe("5");
    const withRead = encodeAdjust(
      { windows: [guarded("{a}", 5, { tokens: 3 })] },
      { prefix: "p:" },
      { key: "p:ticket:x", mode: "settle", keepMs: 1000 },
    );
    expect(withRead.args[4]).not.toBe("5");
  });

  it("applies to the expected window only, floors at 0, gives a missing counter the window's life, exactly once", async () => {
    const prefix = `tgtest:${uid()}:`;
    const a = `{a:${uid()}}`;
    const b = `{b:${uid()}}`;
    const c = `{c:${uid()}}`;
    const start = NOW - 1000;
    await redis.set(`${prefix}${a}:window`, String(start));
    await redis.set(`${prefix}${a}:tokens`, "10");
    await redis.set(`${prefix}${a}:requests`, "4");
    await redis.set(`${prefix}${b}:window`, String(start - 5)); // rolled since the admission
    await redis.set(`${prefix}${b}:tokens`, "10");
    await redis.set(`${prefix}${c}:window`, String(start));
    const call = settle(prefix, "t1", [
      guarded(a, start, { tokens: -25, requests: 2 }),
      guarded(b, start, { tokens: 5 }),
      guarded(c, start, { tokens: 7 }),
    ]);
    const r = await run(call);
    expect(r.applied).toEqual([true, false, true]);
    expect(r.ticket).toBe("unknown");
    expect(await redis.mget(`${prefix}${a}:tokens`, `${prefix}${a}:requests`, `${prefix}${b}:tokens`)).toEqual([
      "0",
      "6",
      "10",
    ]);
    expect(await redis.get(`${prefix}${c}:tokens`)).toBe("7");
    // The window's remaining life (test clock: start + 60 s - now = 59 s), not the ticket's.
    const pttl = await redis.pttl(`${prefix}${c}:tokens`);
    expect(pttl).toBeGreaterThan(58_000);
    expect(pttl).toBeLessThanOrEqual(59_000);
    // The same settle again: finished, nothing applies.
    const again = await run(call);
    expect(again.ticket).toBe("finished");
    expect(again.applied).toEqual([false, false, false]);
    expect(await redis.get(`${prefix}${c}:tokens`)).toBe("7");
  });

  it("a window past its end is not applied; a malformed start or counter is an error before any write", async () => {
    const prefix = `tgtest:${uid()}:`;
    const a = `{a:${uid()}}`;
    const b = `{b:${uid()}}`;
    const start = NOW - 60_000; // ended exactly now
    await redis.set(`${prefix}${a}:window`, String(start));
    await redis.set(`${prefix}${a}:tokens`, "10");
    expect((await run(settle(prefix, "t2", [guarded(a, start, { tokens: 1 })]))).applied).toEqual([false]);
    expect(await redis.get(`${prefix}${a}:tokens`)).toBe("10");

    await redis.set(`${prefix}${a}:window`, String(NOW - 10));
    await redis.set(`${prefix}${b}:window`, "12x");
    const bad = settle(prefix, "t3", [guarded(a, NOW - 10, { tokens: 1 }), guarded(b, NOW - 10, { tokens: 1 })]);
    expect(await errorOf(run(bad))).toContain(`TOLLGATE_CORRUPT ${prefix}${b}:window`);
    await redis.set(`${prefix}${b}:window`, String(NOW + 120_000)); // more than one window ahead
    expect(await errorOf(run(bad))).toContain(`TOLLGATE_CORRUPT ${prefix}${b}:window`);
    await redis.set(`${prefix}${b}:window`, String(NOW - 10));
    await redis.set(`${prefix}${b}:tokens`, "007");
    expect(await errorOf(run(bad))).toContain(`TOLLGATE_CORRUPT ${prefix}${b}:tokens`);
    await redis.del(`${prefix}${b}:tokens`);
    await redis.hset(`${prefix}${b}:tokens`, "f", "1");
    expect(await errorOf(run(bad))).toContain("WRONGTYPE");
    // Nothing was written by any of them: not the first window, not the ticket.
    expect(await redis.get(`${prefix}${a}:tokens`)).toBe("10");
    expect(await redis.exists(`${prefix}ticket:t3`)).toBe(0);
  });
});
