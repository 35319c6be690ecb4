/**
 * kill -9 of Redis under steady load on a fleet of 3 proxies with `failure_policy: fallback` and
 * `fallback_instances: 3`: every instance keeps serving, deciding locally with its share (a third) of each limit;
 * when Redis is back each instance returns to it by itself; nothing is charged twice in the ledger.
 * Figures are printed with the `[fleet fallback]` tag.
 */
import { randomBytes } from "node:crypto";
import {
  createDatabase,
  type Fleet,
  type OpenAIUpstream,
  type RedisServerHandle,
  startFleet,
  startLoad,
  startOpenAIUpstream,
  startRedisServer,
  waitUntil,
} from "@tollgate/test-servers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  expectNothingLostOrDoubled,
  fleetModels,
  liveLimits,
  msg,
  newSecret,
  outcomes,
  statusCounts,
} from "./helpers.js";

let api: OpenAIUpstream;
let redis: RedisServerHandle;
let fleet: Fleet;

beforeAll(async () => {
  [api, redis] = await Promise.all([startOpenAIUpstream({ defaults: { tokens: 10 } }), startRedisServer()]);
  fleet = await startFleet({
    instances: 3,
    store: { type: "redis", url: redis.url },
    storeSettings: { failure_policy: "fallback", fallback_instances: 3, timeout_ms: 1_000 },
    databaseUrl: await createDatabase(inject("postgres").url),
    config: { model_list: fleetModels(api.apiBase) },
  });
}, 120_000);

afterAll(async () => {
  await fleet?.stop();
  await Promise.all([api?.close(), redis?.stop()]);
});

describe("a fleet of 3 proxies with failure_policy fallback", () => {
  it("kill -9 of Redis under steady load: each instance keeps deciding with its share, recovers by itself, nothing charged twice", async () => {
    const team = await fleet.admin("/team/new", { team_id: `fb-${randomBytes(4).toString("hex")}`, max_budget: 1_000 });
    const loadKey = await fleet.admin("/key/generate", {
      key: newSecret().key,
      team_id: team.team_id,
      rpm_limit: 100_000,
    });
    const paid = { model: "paid", messages: msg(), max_tokens: 10 };
    const load = startLoad(fleet, () => ({ body: paid, options: { key: loadKey.key } }), {
      concurrency: 6,
      pauseMs: 10,
    });
    try {
      await load.more(30);
      const killAt = Date.now();
      await redis.kill9();
      await load.more(60);

      // A key with rpm_limit 60, first used during the outage: 300 concurrent requests spread over the instances.
      // Each instance decides alone with a third of the limit: exactly 20 each.
      const key = await fleet.admin("/key/generate", { key: newSecret().key, team_id: team.team_id, rpm_limit: 60 });
      const burst = await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          fleet.chat({ model: "free", messages: msg() }, { key: key.key, instance: i % 3 }),
        ),
      );
      const o = outcomes(burst);
      expect(o.other).toEqual([]);
      expect(o.okByInstance).toEqual([20, 20, 20]);
      expect(o.limited).toBe(240);
      // the degraded answers say so
      expect(fleet.instances.every((i) => i.process.stdout().includes("store health changed"))).toBe(true);

      // an outage of a few seconds at least, whatever the machine's speed
      await waitUntil(() => expect(Date.now() - killAt).toBeGreaterThan(3_000), 10_000);
      const restartAt = Date.now();
      await redis.restart();
      // every instance goes back to Redis by itself: readiness healthy again
      const recovered = await Promise.all(
        fleet.instances.map((inst) =>
          waitUntil(async () => {
            const r = await fleet.request("/health/readiness", undefined, { instance: inst.index });
            expect(r.json.store).toBe("healthy");
            return Date.now() - restartAt;
          }, 60_000),
        ),
      );
      // and counts there again, shared: one request on instance 0 is seen by instance 2
      const probeKey = await fleet.admin("/key/generate", {
        key: newSecret().key,
        team_id: team.team_id,
        rpm_limit: 5,
      });
      expect((await fleet.chat({ model: "free", messages: msg() }, { key: probeKey.key, instance: 0 })).status).toBe(
        200,
      );
      const live = await liveLimits(fleet, `key=${probeKey.key}`, 2);
      expect(live.limits.find((l: any) => l.scope === "api_key" && l.type === "requests")).toMatchObject({ used: 1 });
      // the outage's admissions of the rpm-60 key were counted locally: Redis, restarted empty, does not know them
      const after = await liveLimits(fleet, `key=${key.key}`, 1);
      const usedAfter = after.limits.find((l: any) => l.scope === "api_key" && l.type === "requests").used;

      await load.more(30);
      const r = await load.stop();
      const outage = r.responses.filter((x) => x.sentAt > killAt && x.endedAt < restartAt);
      console.log(
        `[fleet fallback] Redis killed for ${restartAt - killAt} ms under ${r.rate.toFixed(0)} req/s: ${outage.length} requests meanwhile, ` +
          `statuses over the run ${JSON.stringify(statusCounts(r.responses))}; rpm 60 key during the outage: admitted ${o.okByInstance.join(" + ")} ` +
          `(share 20 each); back on Redis ${recovered.map((x) => `${x} ms`).join(", ")} after its restart; ` +
          `Redis counts ${usedAfter} for that key afterwards`,
      );
      expect(r.responses.filter((x) => x.status !== 200).map((x) => `${x.status} ${x.text}`)).toEqual([]);
      expect(outage.length).toBeGreaterThan(0);
      await expectNothingLostOrDoubled(fleet, loadKey.token, r.responses);
    } finally {
      await load.stop();
    }
  }, 240_000);
});
