/**
 * Faults on a fleet of 3 real proxy processes (store `failure_policy: closed`) with its own redis-server and its own
 * PostgreSQL server, under a steady load spread by the fleet's load balancer:
 * - a SIGTERM rolling restart of all 3 instances: zero failed requests, nothing lost in the ledger;
 * - PostgreSQL killed and restarted: management calls answer 503, known keys keep being served, the spend of the
 *   outage reaches the ledger afterwards;
 * - kill -9 of a proxy holding streaming leases: its slots free within the lease TTL, the others keep serving, its
 *   unflushed ledger batch is the only loss (its size is printed);
 * - kill -9 of Redis: every instance answers 503 within the store timeout, recovers by itself when Redis is back,
 *   nothing is charged twice.
 * Figures are printed with the `[fleet faults]` tag.
 */
import { randomBytes } from "node:crypto";
import {
  type BackgroundLoad,
  type Fleet,
  type FleetResponse,
  type OpenAIUpstream,
  type PostgresHandle,
  type RedisServerHandle,
  startFleet,
  startLoad,
  startOpenAIUpstream,
  startPostgres,
  startRedisServer,
  waitUntil,
} from "@tollgate/test-servers";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  checkLedger,
  expectNothingLostOrDoubled,
  fleetModels,
  liveLimits,
  msg,
  NANO,
  newSecret,
  percentile,
  sleep,
  statusCounts,
} from "./helpers.js";

const STORE_TIMEOUT_MS = 1_000;
const LEASE_TTL_S = 5;

let api: OpenAIUpstream;
let slow: OpenAIUpstream;
let redis: RedisServerHandle;
let pgServer: PostgresHandle;
let fleet: Fleet;
/** The steady load's key (team `load`): $0.01 per request, limits and budget present but never binding. */
let loadKey: { key: string; token: string };

const paid = { model: "paid", messages: msg(), max_tokens: 10 };
/** The steady load (6 clients through the balancer); a test that fails leaves it to `afterEach` to stop. */
let running: BackgroundLoad | undefined;
const steady = (): BackgroundLoad => {
  running = startLoad(fleet, () => ({ body: paid, options: { key: loadKey.key } }), { concurrency: 6, pauseMs: 10 });
  return running;
};
/** Servers a test killed (restarted by `afterEach` when the test did not get that far). */
const down = { redis: false, pg: false, frozen: false };
/** Each test starts from a whole fleet, whatever the previous one left behind. */
afterEach(async () => {
  await running?.stop().catch(() => {});
  running = undefined;
  if (down.frozen) redis.resume();
  if (down.redis) await redis.restart();
  if (down.pg) await pgServer.restart();
  down.redis = down.pg = down.frozen = false;
  for (const inst of fleet.instances) if (!inst.alive) await inst.restart();
  await fleet.waitReady();
}, 120_000);

beforeAll(async () => {
  [api, slow, redis, pgServer] = await Promise.all([
    startOpenAIUpstream({ defaults: { tokens: 10 } }),
    // 40 chunks 100 ms apart: a stream holds its slot about 4 s
    startOpenAIUpstream({ defaults: { tokens: 40, chunkDelayMs: 100 } }),
    startRedisServer(),
    startPostgres(),
  ]);
  fleet = await startFleet({
    instances: 3,
    store: { type: "redis", url: redis.url },
    storeSettings: { failure_policy: "closed", timeout_ms: STORE_TIMEOUT_MS },
    databaseUrl: await pgServer.createDatabase(),
    config: { model_list: fleetModels(api.apiBase, slow.apiBase), general_settings: { lease_ttl: LEASE_TTL_S } },
  });
  const team = await fleet.admin("/team/new", { team_id: "load", rpm_limit: 1_000_000, max_budget: 1_000 });
  const s = newSecret();
  loadKey = await fleet.admin("/key/generate", { key: s.key, team_id: team.team_id, rpm_limit: 1_000_000 });
  // every instance knows the key (its cache holds it: the request path needs no database for it)
  for (const inst of fleet.instances) {
    expect((await fleet.chat(paid, { key: loadKey.key, instance: inst.index })).status).toBe(200);
  }
}, 180_000);

afterAll(async () => {
  await fleet?.stop();
  await Promise.all([api?.close(), slow?.close(), redis?.stop(), pgServer?.stop()]);
});

describe("faults on a fleet of 3 proxies (failure_policy closed)", () => {
  it("SIGTERM rolling restart of all 3 under steady load: zero failed requests, nothing lost in the ledger", async () => {
    const load = steady();
    await load.more(30);
    const t0 = Date.now();
    const codes = await fleet.rollingRestart();
    const took = Date.now() - t0;
    await load.more(30);
    const r = await load.stop();
    const failovers = r.responses.filter((x) => x.failovers > 0).length;
    console.log(
      `[fleet faults] rolling restart in ${took} ms under ${r.rate.toFixed(0)} req/s: ${r.responses.length} requests, ` +
        `statuses ${JSON.stringify(statusCounts(r.responses))}, ${failovers} retried by the balancer on another instance`,
    );
    expect(codes).toEqual([0, 0, 0]);
    const failedOnes = r.responses.filter((x) => x.status !== 200);
    if (failedOnes.length > 0) {
      console.log(fleet.events.map((e) => `${e.at - t0} ${e.instance} ${e.what}`).join("\n"));
      for (const f of failedOnes)
        console.log(
          `failed: instance ${f.instance} sent ${f.sentAt - t0} ended ${f.endedAt - t0} ${f.status} ${f.error?.message}`,
        );
    }
    expect(failedOnes.map((x) => `${x.status} ${x.text}`)).toEqual([]);
    const c = await expectNothingLostOrDoubled(fleet, loadKey.token, r.responses);
    expect(c.ok).toBe(r.responses.length);
  }, 240_000);

  it("PostgreSQL killed and restarted: management 503 while down, known keys keep serving, the outage's spend reaches the ledger", async () => {
    const load = steady();
    await load.more(20);
    down.pg = true;
    await pgServer.kill9();
    const downAt = Date.now();
    // every instance answers management calls with 503 (no hang, no 500)
    const mgmt = await Promise.all(
      fleet.instances.map((inst) =>
        waitUntil(async () => {
          const r = await fleet.request(`/key/info?key=${loadKey.key}`, undefined, { instance: inst.index });
          expect(r.status).toBe(503);
          return r;
        }, 30_000),
      ),
    );
    for (const r of mgmt) expect(r.json.error).toMatchObject({ type: "service_unavailable", code: "503" });
    const gen = await fleet.request("/key/generate", {}, { instance: 1 });
    expect(gen.status).toBe(503);
    // the request path keeps serving the known key on every instance, across several ledger flushes (1 s apart)
    await load.more(60);
    await waitUntil(() => expect(Date.now() - downAt).toBeGreaterThan(3_000), 10_000);
    const duringOutage = load.responses.filter((x) => x.sentAt >= downAt).length;
    await pgServer.restart();
    down.pg = false;
    const upAt = Date.now();
    await Promise.all(
      fleet.instances.map((inst) =>
        waitUntil(async () => {
          const r = await fleet.request(`/key/info?key=${loadKey.key}`, undefined, { instance: inst.index });
          expect(r.status).toBe(200);
        }, 60_000),
      ),
    );
    const mgmtBackAfter = Date.now() - upAt;
    await load.more(20);
    const r = await load.stop();
    expect(r.responses.filter((x) => x.status !== 200).map((x) => `${x.status} ${x.text}`)).toEqual([]);
    // the instances did try to write during the outage, and kept the rows
    expect(fleet.instances.some((x) => x.process.stdout().includes("spend ledger write failed"))).toBe(true);
    const t1 = Date.now();
    const c = await expectNothingLostOrDoubled(fleet, loadKey.token, r.responses);
    console.log(
      `[fleet faults] PostgreSQL down ${upAt - downAt} ms: ${duringOutage} requests served meanwhile (all 200), ` +
        `management back ${mgmtBackAfter} ms after the restart; ledger complete ${Date.now() - t1} ms later (${c.inLedger} rows)`,
    );
  }, 240_000);

  it("kill -9 of a proxy holding streaming leases: slots free within the lease TTL, others keep serving, only its unflushed batch is lost", async () => {
    // team `victim`: a key limited to 5 parallel requests and a key for a burst, both used on instance 0
    const team = await fleet.admin("/team/new", {
      team_id: `victim-${randomBytes(4).toString("hex")}`,
      max_budget: 100,
    });
    const key = await fleet.admin("/key/generate", {
      key: newSecret().key,
      team_id: team.team_id,
      max_parallel_requests: 5,
    });
    const burstKey = await fleet.admin("/key/generate", { key: newSecret().key, team_id: team.team_id });
    const load = steady(); // the load key, over the instances
    await load.more(20);

    // 1. five slow streams (4 s each) on instance 0 take every slot of the key
    slow.reset();
    const streams = Array.from({ length: 5 }, () =>
      fleet.chat({ model: "slow", messages: msg(), stream: true }, { key: key.key, instance: 0 }),
    );
    await waitUntil(() => expect(slow.stats.inflight).toBe(5), 30_000, 10);
    // 2. a burst of 20 paid requests on instance 0, answered just before the crash: its ledger batch
    const burst = await Promise.all(
      Array.from({ length: 20 }, () => fleet.chat(paid, { key: burstKey.key, instance: 0 })),
    );
    expect(burst.map((b) => b.status)).toEqual(Array(20).fill(200));
    expect(slow.stats.inflight).toBe(5); // the streams still hold their slots
    // 3. the crash
    const killAt = Date.now();
    await fleet.instances[0]!.kill9();
    const burstAge = killAt - Math.max(...burst.map((b) => b.endedAt));

    // the dead instance's slots are still held: instance 1 refuses the key until their leases expire
    let first: FleetResponse | undefined;
    let freedAfter = Number.NaN;
    for (;;) {
      const r = await fleet.chat({ model: "free", messages: msg() }, { key: key.key, instance: 1 });
      first ??= r;
      if (r.status === 200) {
        freedAfter = Date.now() - killAt;
        break;
      }
      expect(r.status).toBe(429);
      if (Date.now() - killAt > 60_000) break;
      await sleep(50);
    }
    expect(first?.status).toBe(429);
    // The last renewal was at most a renew interval before the crash: the leases end within the TTL of it.
    expect(freedAfter).toBeLessThanOrEqual(LEASE_TTL_S * 1000 + 2_000);
    // and all 5 slots are free again
    const again = await Promise.all(
      Array.from({ length: 5 }, () => fleet.chat({ model: "free", messages: msg() }, { key: key.key, instance: 2 })),
    );
    expect(again.map((x) => x.status)).toEqual(Array(5).fill(200));

    await load.more(30);
    const r = await load.stop();
    const streamResults = await Promise.all(streams);
    // the clients of the dead instance lost their streams; nobody else lost anything
    expect(streamResults.every((x) => x.status === 0 || !x.text.includes("[DONE]"))).toBe(true);
    const failed = r.responses.filter((x) => x.status !== 200);
    const exitedAt = fleet.events.filter((e) => e.instance === 0 && e.what === "exited").at(-1)!.at;
    for (const f of failed) {
      // only requests sent to the dead instance before the balancer saw it gone
      expect(f.instance).toBe(0);
      expect(f.sentAt).toBeLessThanOrEqual(exitedAt);
    }
    const survivors = r.responses.filter((x) => x.instance !== 0 || x.endedAt < killAt - 3_000);
    await expectNothingLostOrDoubled(fleet, loadKey.token, survivors);

    // what the crash cost the ledger: the burst's rows that were not flushed yet
    const c = await checkLedger(fleet, burst);
    const lostNano = c.missing.reduce((sum, m) => sum + Math.round((m.cost ?? 0) * NANO), 0);
    // The store charged every answered request; the ledger lacks exactly the lost rows.
    const live = await liveLimits(fleet, `team_id=${team.team_id}`, 1);
    const counted = Math.round(live.budgets.find((b: any) => b.scope === "team").spend * NANO);
    console.log(
      `[fleet faults] kill -9 of an instance holding 5 stream leases (lease_ttl ${LEASE_TTL_S} s): slots free after ${freedAfter} ms; ` +
        `${failed.length} load requests in flight on it failed, 0 elsewhere; its last batch: ${c.missing.length} of 20 ` +
        `rows lost ($${(lostNano / NANO).toFixed(2)}; answered ${burstAge} ms before the crash, flush interval 1000 ms); ` +
        `store counted $${(counted / NANO).toFixed(2)}, ledger $${(c.ledgerNano / NANO).toFixed(2)}`,
    );
    expect(counted - c.ledgerNano).toBe(lostNano);
    expect(c.inLedger + c.missing.length).toBe(20);

    await fleet.instances[0]!.restart();
  }, 240_000);

  it("Redis frozen (SIGSTOP) under steady load: nobody waits much past the store timeout, recovery on SIGCONT, store and ledger agree", async () => {
    // its own team and key: the team's budget counter in Redis is compared with the ledger afterwards
    const team = await fleet.admin("/team/new", {
      team_id: `freeze-${randomBytes(4).toString("hex")}`,
      max_budget: 1_000,
    });
    const key = await fleet.admin("/key/generate", {
      key: newSecret().key,
      team_id: team.team_id,
      rpm_limit: 1_000_000,
    });
    running = startLoad(fleet, () => ({ body: paid, options: { key: key.key } }), { concurrency: 6, pauseMs: 10 });
    const load = running;
    await load.more(30);
    const frozenAt = Date.now();
    down.frozen = true;
    redis.pause();
    // each instance: the first call waits for the timeout, the next ones answer at once by the policy (503)
    const probes = await Promise.all(
      fleet.instances.map(async (inst) => {
        const out: FleetResponse[] = [];
        for (let i = 0; i < 4; i++) out.push(await fleet.chat(paid, { key: key.key, instance: inst.index }));
        return out;
      }),
    );
    await waitUntil(() => expect(Date.now() - frozenAt).toBeGreaterThan(3_000), 10_000);
    redis.resume();
    down.frozen = false;
    const resumedAt = Date.now();
    const recovered = await Promise.all(
      fleet.instances.map((inst) =>
        waitUntil(async () => {
          const r = await fleet.chat(paid, { key: key.key, instance: inst.index });
          expect(r.status).toBe(200);
          return Date.now() - resumedAt;
        }, 60_000),
      ),
    );
    await load.more(30);
    const r = await load.stop();
    const during = [...probes.flat(), ...r.responses.filter((x) => x.sentAt >= frozenAt && x.sentAt < resumedAt)];
    const slowest = Math.max(...during.map((x) => x.ms));
    console.log(
      `[fleet faults] Redis frozen ${resumedAt - frozenAt} ms: ${during.length} requests meanwhile, statuses ${JSON.stringify(statusCounts(during))}; ` +
        `probes per instance ${probes.map((p) => p.map((x) => `${x.status}/${x.ms.toFixed(0)}ms`).join(" ")).join(" | ")}; ` +
        `slowest ${slowest.toFixed(0)} ms (store timeout ${STORE_TIMEOUT_MS} ms); recovered ${recovered.map((x) => `${x} ms`).join(", ")} after SIGCONT`,
    );
    for (const p of probes) expect(p.map((x) => x.status)).toEqual([503, 503, 503, 503]);
    // no request waits seconds: at most one store timeout for the admission (plus, for a request admitted before
    // the freeze, one for its settle), plus this loaded machine's scheduling
    expect(slowest).toBeLessThan(2 * STORE_TIMEOUT_MS + 1_500);
    expect(r.responses.filter((x) => x.status !== 200 && x.status !== 503).map((x) => `${x.status} ${x.text}`)).toEqual(
      [],
    );
    await expectNothingLostOrDoubled(fleet, key.token, r.responses);
    // Redis kept its data: once the settles that timed out during the freeze are applied (each exactly once), the
    // team's budget counter equals its ledger, with nothing held
    await waitUntil(async () => {
      const ledger = await fleet.sql<{ s: string }>("SELECT sum(spend_nano) AS s FROM spend_logs WHERE team_id = $1", [
        team.team_id,
      ]);
      const live = await liveLimits(fleet, `team_id=${team.team_id}`, 1);
      const b = live.budgets.find((x: any) => x.scope === "team");
      expect({ spend: Math.round(b.spend * NANO), reserved: b.reserved }).toEqual({
        spend: Number(ledger[0]!.s),
        reserved: 0,
      });
    }, 60_000);
  }, 240_000);

  it("kill -9 of Redis under steady load: 503 within the store timeout everywhere, recovery by itself, nothing charged twice", async () => {
    const load = steady();
    await load.more(30);
    const killAt = Date.now();
    down.redis = true;
    await redis.kill9();
    // every instance refuses with 503 (store unavailable), at once
    const probes: FleetResponse[] = [];
    for (const inst of fleet.instances) {
      for (let i = 0; i < 5; i++) probes.push(await fleet.chat(paid, { key: loadKey.key, instance: inst.index }));
    }
    await load.more(60);
    const restartAt = Date.now();
    await redis.restart();
    down.redis = false;
    // each instance recovers by itself: it serves again without a restart
    const recovered = await Promise.all(
      fleet.instances.map((inst) =>
        waitUntil(async () => {
          const r = await fleet.chat(paid, { key: loadKey.key, instance: inst.index });
          expect(r.status).toBe(200);
          return Date.now() - restartAt;
        }, 60_000),
      ),
    );
    await load.more(30);
    const r = await load.stop();

    const outage = [...probes, ...r.responses.filter((x) => x.sentAt > killAt + 200 && x.endedAt < restartAt)];
    const refused = outage.filter((x) => x.status === 503);
    const ms = refused.map((x) => x.ms);
    console.log(
      `[fleet faults] Redis killed: ${outage.length} requests during the outage, statuses ${JSON.stringify(statusCounts(outage))}; ` +
        `503 latency p50 ${percentile(ms, 50).toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms (store timeout ${STORE_TIMEOUT_MS} ms); ` +
        `recovered ${recovered.map((x) => `${x} ms`).join(", ")} after the restart`,
    );
    expect(probes.map((x) => x.status)).toEqual(Array(15).fill(503));
    for (const p of probes) expect(p.json.error.type).toBe("service_unavailable");
    // no request waits seconds: each answers within the store timeout (plus this loaded machine's scheduling)
    expect(Math.max(...ms)).toBeLessThan(STORE_TIMEOUT_MS + 1_500);
    // everything else in the run either succeeded or was refused with 503: no 500, no hang, no reset
    expect(r.responses.filter((x) => x.status !== 200 && x.status !== 503).map((x) => `${x.status} ${x.text}`)).toEqual(
      [],
    );
    await expectNothingLostOrDoubled(fleet, loadKey.token, r.responses);
    // Redis came back empty (no persistence): its budget counters start again from what was spent since. The ledger
    // keeps everything; this is what a Redis without AOF or replicas forgets (docs/scaling.md).
    const ledger = await fleet.sql<{ s: string }>("SELECT sum(spend_nano) AS s FROM spend_logs WHERE team_id = 'load'");
    const live = await liveLimits(fleet, "team_id=load", 2);
    console.log(
      `[fleet faults] after the Redis crash: the team's budget counter in Redis $${live.budgets.find((b: any) => b.scope === "team").spend.toFixed(2)}, ` +
        `its ledger $${(Number(ledger[0]!.s) / NANO).toFixed(2)}`,
    );
  }, 240_000);
});
