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
