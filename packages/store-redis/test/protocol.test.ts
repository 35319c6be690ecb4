import { ADJUST_SCRIPT, ADMIT_SCRIPT, RENEW_SCRIPT, SCRIPTS } from "@tollgate/redis-scripts";
import { type RedisServerHandle, startRedisServer } from "@tollgate/test-servers";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisStore } from "../src/index.js";
import { commandStats, descriptor, uid } from "./helpers.js";

// A dedicated server: these tests flush its script cache and read its command statistics.
let server: RedisServerHandle;
let admin: Redis;
beforeAll(async () => {
  server = await startRedisServer();
  admin = new Redis(server.url);
});
afterAll(async () => {
  await admin.quit();
  await server.stop();
});

/** A client that counts every command it sends (each one is a round trip unless pipelined). */
function countingClient(): { client: Redis; sent: string[] } {
  const client = new Redis(server.url);
  const sent: string[] = [];
  const original = client.sendCommand.bind(client);
  client.sendCommand = ((cmd: { name: string }, ...rest: unknown[]) => {
    sent.push(cmd.name);
    return (original as (...a: unknown[]) => unknown)(cmd, ...rest);
  }) as typeof client.sendCommand;
  return { client, sent };
}

const threeDescriptors = () => [
  descriptor(`{api_key:${uid()}}`, 1000, 1_000_000),
  descriptor(`{team:${uid()}}`, 1000, 1_000_000),
  descriptor(`{user:${uid()}}`, 1000, 1_000_000),
];

describe("protocol", () => {
  it("loads every script as the store is created, before the first admission", async () => {
    await admin.script("FLUSH");
    const s0 = await commandStats(admin);
    const store = createRedisStore({ connection: server.url, prefix: `tgtest:${uid()}:` });
    expect((await store.admit({ windows: threeDescriptors(), gauges: [] })).admitted).toBe(true);
    const s1 = await commandStats(admin);
    const delta = (name: string) => (s1[name] ?? 0) - (s0[name] ?? 0);
    expect(delta("script|load")).toBe(SCRIPTS.length);
    expect(delta("evalsha")).toBe(1);
    expect(delta("eval")).toBe(0);
    for (const s of SCRIPTS) expect(await admin.script("EXISTS", s.sha1)).toEqual([1]);
    await store.close();
  });

  it("after SCRIPT FLUSH, 50 concurrent calls load the script once and send EVALSHA again, never EVAL", async () => {
    const store = createRedisStore({ client: admin, prefix: `tgtest:${uid()}:` });
    const batch = { windows: threeDescriptors(), gauges: [] };
    expect((await store.admit(batch)).admitted).toBe(true);
    await admin.script("FLUSH");
    expect(await admin.script("EXISTS", ADMIT_SCRIPT.sha1)).toEqual([0]);
    const s0 = await commandStats(admin);
    const burst = await Promise.all(Array.from({ length: 50 }, () => store.admit(batch)));
    expect(burst.every((r) => r.admitted)).toBe(true);
    const s1 = await commandStats(admin);
    const delta = (name: string) => (s1[name] ?? 0) - (s0[name] ?? 0);
    expect(delta("eval")).toBe(0);
    expect(delta("script|load")).toBe(1);
    expect(await admin.script("EXISTS", ADMIT_SCRIPT.sha1)).toEqual([1]);
    expect((await store.admit(batch)).windows[0]!.counters[0]!.value).toBe(52);
    await store.close();
  });

  it("standalone: exactly one round trip per admission and one per settle (INFO commandstats deltas)", async () => {
    const { client, sent } = countingClient();
    const store = createRedisStore({ client, prefix: `tgtest:${uid()}:` });
    const windows = threeDescriptors();
    const gauge = { key: windows[0]!.key, name: "max_parallel_requests" };
    // Warm the script cache so the count below is the steady state.
    await admin.script("LOAD", ADMIT_SCRIPT.source);
    await admin.script("LOAD", ADJUST_SCRIPT.source);
    await client.ping();
    sent.length = 0; // drop the connection handshake
    const N = 20;
    const s0 = await commandStats(admin);
    for (let i = 0; i < N; i++) {
      const lease = { id: `req-${i}`, ttlMs: 30_000 };
      const admitted = await store.admit({ windows, gauges: [{ ...gauge, limit: 100, enforce: true }], lease });
      expect(admitted.admitted).toBe(true);
      // settle: token correction on every descriptor and lease release, in one call
      const settled = await store.adjust({
        windows: windows.map((w, j) => ({
          key: w.key,
          windowMs: w.windowMs,
          algorithm: w.algorithm,
          expectStart: admitted.windows[j]!.start,
          counters: [
            { name: "requests", delta: 0 },
            { name: "tokens", delta: -3 },
          ],
        })),
        release: { id: lease.id, gauges: [gauge], holds: [] },
      });
      expect(settled.released).toBe(1);
    }
    const s1 = await commandStats(admin);
    const delta = (name: string) => (s1[name] ?? 0) - (s0[name] ?? 0);
    expect(delta("evalsha")).toBe(2 * N);
    expect(delta("eval")).toBe(0);
    expect(sent.filter((c) => c.startsWith("eval"))).toEqual(Array.from({ length: 2 * N }, () => "evalsha"));
    expect(sent.filter((c) => !c.startsWith("eval"))).toEqual([]);
    await store.close();
    await client.quit();
  });

  it("renew is one round trip and extends live entries only", async () => {
    const { client, sent } = countingClient();
    const store = createRedisStore({ client, prefix: `tgtest:${uid()}:` });
    const key = `{api_key:${uid()}}`;
    const gauge = { key, name: "max_parallel_requests" };
    await store.admit({
      windows: [],
      gauges: [{ ...gauge, limit: 5, enforce: true }],
      lease: { id: "a", ttlMs: 30_000 },
    });
    await admin.script("LOAD", RENEW_SCRIPT.source);
    sent.length = 0;
    expect(await store.renew({ id: "a", gauges: [gauge], holds: [] }, 60_000)).toBe(1);
    expect(sent).toEqual(["evalsha"]);
    expect(await store.renew({ id: "unknown", gauges: [gauge], holds: [] }, 60_000)).toBe(0);
    await store.close();
    await client.quit();
  });

  it("real expiry: a client that disconnects holding a lease frees the slot after the TTL", async () => {
    const prefix = `tgtest:${uid()}:`;
    const key = `{api_key:${uid()}}`;
    const gauges = [{ key, name: "max_parallel_requests", limit: 1, enforce: true }];
    const crashing = new Redis(server.url);
    const doomed = createRedisStore({ client: crashing, prefix });
    expect((await doomed.admit({ windows: [], gauges, lease: { id: "doomed", ttlMs: 400 } })).admitted).toBe(true);
    crashing.disconnect(); // the process "dies": no release is ever sent

    const survivor = createRedisStore({ client: admin, prefix });
    const denied = await survivor.admit({ windows: [], gauges, lease: { id: "next", ttlMs: 30_000 } });
    expect(denied.admitted).toBe(false);
    expect(denied.gauges[0]!.inFlight).toBe(1);
    await new Promise((r) => setTimeout(r, 500));
    const admitted = await survivor.admit({ windows: [], gauges, lease: { id: "next", ttlMs: 30_000 } });
    expect(admitted.admitted).toBe(true);
    expect(admitted.gauges[0]!.inFlight).toBe(1);
    await doomed.close();
    await survivor.close();
  });
});
