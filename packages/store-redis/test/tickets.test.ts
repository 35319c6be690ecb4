import type { AdjustBatch, AdmitBatch, WindowOp } from "@tollgate/core";
import { ticketKey } from "@tollgate/redis-scripts";
import calculateSlot from "cluster-key-slot";
import { Cluster, Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../src/index.js";
import { uid } from "./helpers.js";

const redis = new Redis(inject("redis").url);
const cluster = new Cluster(inject("redisCluster").nodes);
afterAll(async () => {
  await redis.quit();
  await cluster.quit();
});

/** Base keys in different thirds of the slot space (different masters of the test Cluster). */
function keysOnDistinctSlots(n: number): string[] {
  const keys: string[] = [];
  for (let part = 0; keys.length < n; ) {
    const key = `{api_key:${uid()}}`;
    if (Math.floor(calculateSlot(key) / 5462) === part % 3) {
      keys.push(key);
      part++;
    }
  }
  return keys;
}

const win = (key: string, tokens: number): WindowOp => ({
  key,
  windowMs: 60_000,
  algorithm: "fixed",
  noHolds: true,
  counters: [
    { name: "requests", limit: 100, amount: 1, enforce: true },
    { name: "tokens", limit: 10_000, amount: tokens, enforce: true },
  ],
});

function setup(client: Redis | Cluster) {
  let now = Date.now();
  const prefix = `tgtest:${uid()}:`;
  const store = createRedisStore({ client, prefix, testClock: () => now });
  const [a, b, c] = keysOnDistinctSlots(3) as [string, string, string];
  const admit = (id: string, tokens = 100): AdmitBatch => ({
    windows: [win(a, tokens), win(b, tokens), win(c, tokens)],
    gauges: [{ key: a, name: "max_parallel_requests", limit: 5, enforce: true }],
    lease: { id, ttlMs: 30_000 },
    ticket: true,
  });
  const read = async () =>
    (
      await store.read({
        windows: [a, b, c].map((key) => ({
          key,
          windowMs: 60_000,
          algorithm: "fixed" as const,
          noHolds: true,
          counters: ["requests", "tokens"],
        })),
        gauges: [{ key: a, name: "max_parallel_requests" }],
      })
    ).windows.map((w) => w.counters.map((x) => x.value));
  const inFlight = async () =>
    (await store.read({ windows: [], gauges: [{ key: a, name: "max_parallel_requests" }] })).gauges[0]!.inFlight;
  /** The settle: tokens of a and c only (b's window is not named), the gauge released. */
  const settle = (id: string, starts: number[], delta: number, finish: "settle" | "release"): AdjustBatch => ({
    readBack: false,
    windows: [
      {
        key: a,
        windowMs: 60_000,
        algorithm: "fixed",
        noHolds: true,
        expectStart: starts[0]!,
        counters: [{ name: "tokens", delta }],
      },
      {
        key: c,
        windowMs: 60_000,
        algorithm: "fixed",
        noHolds: true,
        expectStart: starts[2]!,
        counters: [{ name: "tokens", delta }],
      },
    ],
    release: { id, gauges: [{ key: a, name: "max_parallel_requests" }], holds: [], windows: [a, b, c] },
    ticket: { id, finish, keepMs: 60_000 },
  });
  /** Another instance on the same data, as in another process. */
  const twin = () => createRedisStore({ client, prefix, testClock: () => now });
  return { store, twin, admit, read, inFlight, settle, a, b, c, advance: (ms: number) => (now += ms) };
}

for (const [name, client] of [
  ["standalone", redis],
  ["cluster", cluster],
] as const) {
  describe(`tickets on redis (${name})`, () => {
    it("a settle applies exactly once however often it is sent, and from whichever store instance", async () => {
      const t = setup(client);
      const other = t.twin();
      const r = await t.store.admit(t.admit("r1"));
      expect(r.admitted).toBe(true);
      const starts = r.windows.map((w) => w.start);
      const first = await t.store.adjust(t.settle("r1", starts, 20, "settle"));
      expect(first).toMatchObject({ applied: [true, true], released: 1, ticket: "open" });
      for (const s of [t.store, other, other]) {
        const again = await s.adjust(t.settle("r1", starts, 20, "settle"));
        expect(again).toMatchObject({ applied: [false, false], released: 0, ticket: "finished" });
      }
      // A release after the settle applies nothing either.
      expect(await t.store.adjust(t.settle("r1", starts, -120, "release"))).toMatchObject({
        applied: [false, false],
        released: 0,
        ticket: "finished",
      });
      expect(await t.read()).toEqual([
        [1, 120],
        [1, 100],
        [1, 120],
      ]);
      expect(await t.inFlight()).toBe(0);
      await t.store.close();
      await other.close();
    });

    it("a release applies only while the ticket is open; an unknown ticket is released as nothing and finished", async () => {
      const t = setup(client);
      const r = await t.store.admit(t.admit("r2"));
      const starts = r.windows.map((w) => w.start);
      expect(await t.store.adjust(t.settle("r2", starts, -100, "release"))).toMatchObject({
        applied: [true, true],
        released: 1,
        ticket: "open",
      });
      expect(await t.read()).toEqual([
        [1, 0],
        [1, 100],
        [1, 0],
      ]);
      // Never admitted: the release finds nothing to undo and marks the id finished.
      expect(await t.store.adjust(t.settle("ghost", starts, -100, "release"))).toMatchObject({
        applied: [false, false],
        released: 0,
        ticket: "unknown",
      });
      // ... so an admission arriving later under it is refused, applying nothing.
      const late = await t.store.admit(t.admit("ghost"));
      expect(late).toMatchObject({ admitted: false, denied: { type: "ticket" } });
      expect(await t.read()).toEqual([
        [1, 0],
        [1, 100],
        [1, 0],
      ]);
      expect(await t.inFlight()).toBe(0);
      await t.store.close();
    });

    it("a settle of an unknown ticket (expired with its lease) applies; renew extends an open ticket", async () => {
      const t = setup(client);
      const r = await t.store.admit(t.admit("r3"));
      const starts = r.windows.map((w) => w.start);
      const lease = {
        id: "r3",
        gauges: [{ key: t.a, name: "max_parallel_requests" }],
        holds: [],
        windows: [t.a, t.b, t.c],
      };
      t.advance(20_000);
      // The gauge entry and the ticket: the ticket counts once however many slot groups keep a part of it.
      expect(await t.store.renew(lease, 30_000)).toBe(2);
      t.advance(20_000); // 40 s after the admission, 20 s after the renewal: still open
      expect(await t.store.renew(lease, 1_000)).toBe(2);
      t.advance(1_000);
      expect(await t.store.renew(lease, 30_000)).toBe(0);
      const settled = await t.store.adjust(t.settle("r3", starts, 5, "settle"));
      expect(settled).toMatchObject({ applied: [true, true], released: 0, ticket: "unknown" });
      await t.store.close();
    });
  });
}

describe("tickets on a Cluster: one ticket per slot group, under a key of that group's slot", () => {
  it("each group is exactly once on its own: a retry applies only the group that had not applied", async () => {
    const t = setup(cluster);
    const r = await t.store.admit(t.admit("g1"));
    expect(r.admitted).toBe(true);
    const starts = r.windows.map((w) => w.start);
    // Settle a's group only (as if c's group had timed out), then the whole settle again.
    const whole = t.settle("g1", starts, 30, "settle");
    // the sub-batch of a's slot group: its window, its lease entries, its window key
    const aOnly: AdjustBatch = {
      ...whole,
      windows: [whole.windows[0]!],
      release: { ...whole.release!, windows: [t.a] },
    };
    expect((await t.store.adjust(aOnly)).applied).toEqual([true]);
    const retry = await t.store.adjust(whole);
    expect(retry).toMatchObject({ applied: [false, true], ticket: "open" });
    expect(await t.read()).toEqual([
      [1, 130],
      [1, 100],
      [1, 130],
    ]);
    await t.store.close();
  });

  it("ticket keys live on the slot of their group, whatever windows a call names", async () => {
    const prefix = `tgtest:${uid()}:`;
    const store = createRedisStore({ client: cluster, prefix });
    const [a, b] = keysOnDistinctSlots(2) as [string, string];
    const batch: AdmitBatch = {
      windows: [win(a, 1), win(b, 1)],
      gauges: [],
      lease: { id: "k1", ttlMs: 30_000 },
      ticket: true,
    };
    expect((await store.admit(batch)).admitted).toBe(true);
    const found = await Promise.all(cluster.nodes("master").map((node) => node.keys(`${prefix}*ticket:k1`)));
    const keys = found.flat();
    expect(keys).toHaveLength(2);
    const slots = keys.map((k) => calculateSlot(k)).sort((x, y) => x - y);
    expect(slots).toEqual([calculateSlot(a), calculateSlot(b)].sort((x, y) => x - y));
    expect(keys.every((k) => k.startsWith(`${prefix}{`))).toBe(true);
    expect(ticketKey(prefix, "k1")).toBe(`${prefix}ticket:k1`);
    await store.close();
  });
});
