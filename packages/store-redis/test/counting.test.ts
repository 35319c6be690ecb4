/**
 * Counting tests (issue 10): a whole request through `@tollgate/gate` (3 scopes with requests + tokens limits and
 * max parallel on the key, 3 budgets) costs exactly 1 Redis round trip to admit and 1 for each of settle, fail,
 * release and renew on a standalone Redis (INFO commandstats on a dedicated server, and a client counting what it
 * sends); on a Cluster it never meets CROSSSLOT and costs one script per hash slot it touches.
 */
import { randomUUID } from "node:crypto";
import type { BudgetSpec, PriceTable } from "@tollgate/budgets";
import { scopes } from "@tollgate/core";
import { createGate, type GateAdmission } from "@tollgate/gate";
import { slotTag, ticketKey } from "@tollgate/redis-scripts";
import { type RedisServerHandle, startRedisServer } from "@tollgate/test-servers";
import calculateSlot from "cluster-key-slot";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../src/index.js";
import { commandStats } from "./helpers.js";

const PRICES: PriceTable = {
  "test-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002", max_output_tokens: 8000 },
};

/** A request as the proxy builds it: api key, team and user limits (max parallel on the key), 3 budgets. */
function request(id = randomUUID()) {
  const key = `k-${id}`;
  const team = `t-${id}`;
  const user = `u-${id}`;
  const budgets: BudgetSpec[] = [
    { scope: "key", id: key, maxBudget: "10", duration: "1d" },
    { scope: "team", id: team, maxBudget: "100", duration: "1mo" },
    { scope: "user", id: user, maxBudget: "5", duration: "1d" },
  ];
  return {
    limits: [
      scopes.apiKey(key, { requests: 100, tokens: 1_000_000, maxParallel: 10 }),
      scopes.team(team, { requests: 1000, tokens: 10_000_000 }),
      scopes.user(user, { requests: 100, tokens: 1_000_000 }),
    ],
    tokens: { input: 300, output: 500 },
    model: "test-model",
    maxTokens: 500,
    budgets,
  };
}

const admitted = (a: GateAdmission) => {
  if (!a.ok) throw new Error(`denied: ${JSON.stringify(a)}`);
  return a;
};

describe("counting: one request through the gate on a standalone Redis", () => {
  // A dedicated server: the test reads its command statistics.
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

  const stats = () => commandStats(admin);

  it("admit, settle, fail, release and renew: exactly 1 round trip each (EVALSHA), nothing else sent", async () => {
    const client = new Redis(server.url);
    const sent: string[] = [];
    const original = client.sendCommand.bind(client);
    client.sendCommand = ((cmd: { name: string }, ...rest: unknown[]) => {
      sent.push(cmd.name);
      return (original as (...a: unknown[]) => unknown)(cmd, ...rest);
    }) as typeof client.sendCommand;
    const store = createRedisStore({ client, prefix: `count:${randomUUID()}:` });
    const gate = createGate({ store, budgets: { prices: PRICES } });
    // Warm: scripts loaded (the store loads them at creation), connection up.
    const warm = admitted(await gate.admit(request()));
    await warm.ticket.settle({ inputTokens: 300, outputTokens: 400 });

    const measure = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
      sent.length = 0;
      const s0 = await stats();
      const r = await f();
      const s1 = await stats();
      const d = (name: string) => (s1[name] ?? 0) - (s0[name] ?? 0);
      expect([what, d("evalsha"), d("eval"), sent]).toEqual([what, 1, 0, ["evalsha"]]);
      return r;
    };
    const a = await measure("admit", async () => admitted(await gate.admit(request())));
    await measure("settle", () => a.ticket.settle({ inputTokens: 300, outputTokens: 420 }));
    const b = await measure("admit", async () => admitted(await gate.admit(request())));
    await measure("renew", () => b.ticket.renew());
    await measure("fail", () => b.ticket.fail());
    const c = await measure("admit", async () => admitted(await gate.admit(request())));
    await measure("release", () => c.ticket.release());
    await store.close();
    client.disconnect();
  });
});

describe("counting: one request through the gate on a 3-master Cluster", () => {
  it("never CROSSSLOT: one script per hash slot the request touches, every ticket under its group's slot", async () => {
    const nodes = inject("redisCluster").nodes;
    const cluster = new Cluster(nodes);
    const masters = nodes.map((n) => new Redis(n.port, n.host));
    const prefix = `count:${randomUUID()}:`;
    const store = createRedisStore({ client: cluster, prefix });
    const gate = createGate({ store, budgets: { prices: PRICES } });
    const evalshas = async () => {
      let n = 0;
      for (const m of masters) {
        const info = await m.info("commandstats");
        n += Number(/^cmdstat_evalsha:calls=(\d+)/m.exec(info)?.[1] ?? 0);
      }
      return n;
    };
    admitted(await gate.admit(request())); // warm
    for (let i = 0; i < 20; i++) {
      const id = randomUUID();
      const e0 = await evalshas();
      const a = admitted(await gate.admit(request(id)));
      const e1 = await evalshas();
      // The request's keys (every one names its id; tickets do not) and their slots.
      const keys = (await Promise.all(masters.map((m) => m.keys(`${prefix}*${id}*`)))).flat();
      const slots = new Set(keys.filter((k) => !k.includes(":ticket:")).map((k) => calculateSlot(k)));
      // One script per slot group: as many as the distinct slots of the request's keys (several here).
      expect(e1 - e0).toBe(slots.size);
      expect(slots.size).toBeGreaterThan(1);
      const outcome =
        i % 2 === 0 ? await a.ticket.settle({ inputTokens: 1, outputTokens: 1 }) : await a.ticket.release();
      expect(outcome.status).toBe("applied");
      // Each group's ticket lives on the group's own slot, under a tag of that slot.
      for (const slot of slots) {
        const found = await cluster.exists(ticketKey(prefix, a.ticket.id, slotTag(calculateSlot, slot)));
        expect(found).toBe(1);
      }
    }
    await store.close();
    cluster.disconnect();
    for (const m of masters) m.disconnect();
  });
});
