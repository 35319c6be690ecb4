/**
 * A fleet of 3 real proxy processes sharing one store and one PostgreSQL database, with requests spread over the
 * instances: limits and budgets are exact fleet-wide. Run on a standalone redis-server, on a 3-master Redis Cluster
 * (the request's scopes land on different slots and masters), and on a fleet where one instance uses the Upstash
 * store (the REST server of the test tooling, in front of the same Redis).
 *
 * Figures (reservation error, block propagation times) are printed with the `[fleet]` tag.
 */
import { randomBytes } from "node:crypto";
import { capAndEstimate } from "@tollgate/core";
import {
  createDatabase,
  type Fleet,
  type OpenAIUpstream,
  startFleet,
  startOpenAIUpstream,
  startUpstashRestServer,
  type UpstashRestServer,
  waitUntil,
} from "@tollgate/test-servers";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  clusterMasterOf,
  fleetModels,
  keysPerMaster,
  ledgerTotals,
  liveLimits,
  msg,
  NANO,
  newSecret,
  outcomes,
  sleep,
} from "./helpers.js";

type Kind = "redis" | "redis_cluster" | "upstash";

let api: OpenAIUpstream;
let slow: OpenAIUpstream;
beforeAll(async () => {
  api = await startOpenAIUpstream({ defaults: { tokens: 10 } });
  // 40 chunks 50 ms apart: a stream holds its slot about 2 s
  slow = await startOpenAIUpstream({ defaults: { tokens: 40, chunkDelayMs: 50 } });
});
afterAll(async () => {
  await api?.close();
  await slow?.close();
});

describe.each(["redis", "redis_cluster", "upstash"] as const)("a fleet of 3 proxies on %s", (kind: Kind) => {
  let fleet: Fleet;
  let upstash: UpstashRestServer | undefined;

  beforeAll(async () => {
    const databaseUrl = await createDatabase(inject("postgres").url);
    const redisUrl = inject("redis").url;
    if (kind === "upstash") upstash = await startUpstashRestServer({ redisUrl });
    fleet = await startFleet({
      instances: 3,
      store:
        kind === "redis_cluster"
          ? { type: "redis_cluster", nodes: inject("redisCluster").nodes }
          : { type: "redis", url: redisUrl },
      // Upstash: instance 2 reaches the same Redis through the REST server; 0 and 1 speak to it directly.
      storeFor:
        kind === "upstash"
          ? (i) =>
              i === 2 ? { type: "upstash", url: upstash!.url, token: upstash!.token } : { type: "redis", url: redisUrl }
          : undefined,
      // A loaded test machine must not look like an outage (exactness under store timeouts is the drills' subject).
      storeSettings: { timeout_ms: 5000 },
      databaseUrl,
      config: { model_list: fleetModels(api.apiBase, slow.apiBase) },
    });
  }, 120_000);

  afterAll(async () => {
    await fleet?.stop();
    await upstash?.close();
    cluster?.close();
  });

  let cluster: Awaited<ReturnType<typeof clusterMasterOf>> | undefined;
  beforeAll(async () => {
    if (kind === "redis_cluster") cluster = await clusterMasterOf(inject("redisCluster").nodes);
  });

  /** A team; unless given, its limits and budget are loose (present in every admission, never binding). */
  const makeTeam = (fields: Record<string, unknown> = {}) =>
    fleet.admin("/team/new", {
      team_id: `team-${randomBytes(6).toString("hex")}`,
      rpm_limit: 1_000_000,
      tpm_limit: 100_000_000,
      max_budget: 1_000,
      ...fields,
    });

  /**
   * A key of `team`: every request then counts on the key's and the team's scopes. On the Cluster the key's secret
   * is drawn until the key's scopes and the team's live on different masters, so each request spans masters.
   */
  const makeKey = async (team: string, fields: Record<string, unknown> = {}) => {
    for (;;) {
      const s = newSecret();
      if (cluster !== undefined) {
        const masters = new Set(
          await Promise.all(
            [`{api_key:${s.hash}}`, `{budget:key:${s.hash}}`, `{team:${team}}`, `{budget:team:${team}}`].map((t) =>
              cluster!.masterOf(t),
            ),
          ),
        );
        if (masters.size < 2) continue;
      }
      return fleet.admin("/key/generate", { key: s.key, team_id: team, max_budget: 1_000, ...fields });
    }
  };

  it("per-key rpm_limit 50: 300 concurrent requests over the 3 instances (openai client), exactly 50 succeed", async () => {
    const key = await makeKey((await makeTeam()).team_id, { rpm_limit: 50 });
    const clients = fleet.instances.map(
      (inst) => new OpenAI({ baseURL: `${inst.url}/v1`, apiKey: key.key, maxRetries: 0, timeout: 120_000 }),
    );
    const results = await Promise.allSettled(
      Array.from({ length: 300 }, (_, i) =>
        clients[i % 3]!.chat.completions.create({ model: "free", messages: msg() as any }),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const limited = results.filter((r) => r.status === "rejected" && r.reason instanceof OpenAI.RateLimitError).length;
    const other = results.filter((r) => r.status === "rejected" && !(r.reason instanceof OpenAI.RateLimitError));
    expect(other.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    expect(ok).toBe(50);
    expect(limited).toBe(250);
    // every instance answered its share of the 300, and the store counted 50 for the key
    const live = await liveLimits(fleet, `key=${key.key}`, 1);
    expect(live.limits.find((l: any) => l.scope === "api_key" && l.type === "requests")).toMatchObject({
      limit: 50,
      used: 50,
    });
  }, 180_000);

  it("max_parallel_requests 5 with slow streams: never more than 5 in flight at the upstream, fleet-wide", async () => {
    const key = await makeKey((await makeTeam()).team_id, { max_parallel_requests: 5 });
    slow.reset();
    // 15 clients (5 per instance) keep asking for 2 s streams for about 6 s; a 429 waits a little and asks again
    const end = Date.now() + 6_000;
    let streamed = 0;
    let refused = 0;
    const other: string[] = [];
    const worker = async (i: number) => {
      while (Date.now() < end) {
        const r = await fleet.chat({ model: "slow", messages: msg(), stream: true }, { key: key.key, instance: i % 3 });
        if (r.status === 200 && r.text.includes("[DONE]")) streamed++;
        else if (r.status === 429) {
          refused++;
          await sleep(25);
        } else other.push(`${r.status} ${r.text.slice(0, 200)}`);
      }
    };
    await Promise.all(Array.from({ length: 15 }, (_, i) => worker(i)));
    expect(other).toEqual([]);
    console.log(
      `[fleet ${kind}] max_parallel 5: ${streamed} streams served, ${refused} refused, upstream saw at most ${slow.stats.maxInflight} at once`,
    );
    expect(slow.stats.maxInflight).toBeLessThanOrEqual(5);
    expect(slow.stats.maxInflight).toBe(5); // the limit was reached (the 15 clients kept it full)
    expect(streamed).toBeGreaterThanOrEqual(10); // slots were freed and reused
    // every slot is back: nothing in flight for the key
    const live = await liveLimits(fleet, `key=${key.key}`, 2);
    expect(live.limits.find((l: any) => l.type === "max_parallel_requests")).toMatchObject({ used: 0 });
  }, 180_000);

  it("a team budget of $0.50 shared by keys used on different instances: 100 concurrent $0.01 requests, exactly 50, ledger $0.50", async () => {
    const team = await makeTeam({ max_budget: 0.5 });
    const a = await makeKey(team.team_id, { rpm_limit: 10_000 });
    const b = await makeKey(team.team_id, { rpm_limit: 10_000 });
    // key a on instances 0 and 1, key b on instances 1 and 2: both keys on several instances, at once
    const responses = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        fleet.chat(
          { model: "paid", messages: msg(), max_tokens: 10 },
          { key: i % 2 === 0 ? a.key : b.key, instance: i % 2 === 0 ? (i % 4 === 0 ? 0 : 1) : i % 4 === 1 ? 1 : 2 },
        ),
      ),
    );
    const o = outcomes(responses);
    expect(o.other).toEqual([]);
    expect(o.ok).toBe(50);
    expect(o.budget).toBe(50);
    const charged = responses.filter((r) => r.status === 200).reduce((s, r) => s + Math.round((r.cost ?? 0) * NANO), 0);
    expect(charged).toBe(0.5 * NANO);
    // the ledger (written within a second or so by whichever instance served each request) holds exactly $0.50
    await waitUntil(async () => {
      const l = await ledgerTotals(fleet, { team: team.team_id });
      expect(l).toMatchObject({ success: 50, spendNano: 0.5 * NANO });
    }, 30_000);
    const info = await fleet.admin(`/team/info?team_id=${team.team_id}`);
    expect(info.team_info.spend).toBeCloseTo(0.5, 9);
    // and the store's counter agrees: $0.50 spent, nothing held
    const live = await liveLimits(fleet, `team_id=${team.team_id}`);
    expect(live.budgets.find((x: any) => x.scope === "team")).toMatchObject({ spend: 0.5, reserved: 0 });
    if (kind === "redis_cluster") {
      // the counters of these requests are spread over the masters (read on each master directly)
      const holders = await keysPerMaster(inject("redisCluster").nodes, fleet.prefix, [team.team_id, a.token, b.token]);
      console.log(`[fleet ${kind}] the team budget test's keys per master: ${holders.join(", ")}`);
      expect(holders.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    }
  }, 180_000);

  it("tpm_limit with reservation: tokens used in the window never exceed the limit by more than the reservation error", async () => {
    // Round 1: the upstream reports no more than the estimate (prompt 1 token): used ≤ limit, exactly.
    // Round 2: it reports 40 prompt tokens for a prompt the estimate puts at fewer: each admitted request may
    // overshoot by its error, so used ≤ limit + Σ errors of the admitted requests.
    for (const [round, promptTokens] of [
      [1, 1],
      [2, 40],
    ] as const) {
      const limit = 2_000;
      const key = await makeKey((await makeTeam()).team_id, { tpm_limit: limit });
      const body = {
        model: "free",
        messages: msg("tell me about rate limits please"),
        max_tokens: 50,
        x_test: { promptTokens, tokens: 50 },
      };
      const est = capAndEstimate(body).estimate;
      const reserved = est.input + est.output;
      // the output never exceeds the max_tokens reserved (shrunk to fit near the limit): the error is the prompt's
      const errorEach = Math.max(0, promptTokens - est.input);
      const responses = await Promise.all(
        Array.from({ length: 90 }, (_, i) => fleet.chat(body, { key: key.key, instance: i % 3 })),
      );
      const o = outcomes(responses);
      expect(o.other).toEqual([]);
      const used = await waitUntil(async () => {
        const l = await ledgerTotals(fleet, { keyHash: key.token });
        expect(l.success).toBe(o.ok);
        return l.tokens;
      }, 30_000);
      const error = o.ok * errorEach;
      const live = await liveLimits(fleet, `key=${key.key}`);
      const counted = live.limits.find((l: any) => l.scope === "api_key" && l.type === "tokens");
      console.log(
        `[fleet ${kind}] tpm ${limit}, round ${round}: ${o.ok} admitted of 90, reserved ${reserved} each (prompt estimated ${est.input}, reported ${promptTokens}); ` +
          `tokens used ${used} (store counted ${counted.used}), over the limit by ${Math.max(0, used - limit)}, reservation error of the admitted ${error}`,
      );
      expect(counted.used).toBe(used);
      expect(used).toBeLessThanOrEqual(limit + error);
      const usages = responses.filter((r) => r.status === 200).map((r) => r.json.usage.total_tokens as number);
      expect(usages.reduce((s, t) => s + t, 0)).toBe(used);
      if (round === 1) {
        expect(error).toBe(0);
        expect(used).toBeLessThanOrEqual(limit);
      }
      // a denial needs used + held + reserved > limit, and each admitted request adds at most reserved + its error
      expect(o.ok).toBeGreaterThanOrEqual(Math.ceil((limit - reserved + 1) / Math.max(reserved, reserved + errorEach)));
      expect(o.ok).toBeGreaterThan(0);
      expect(o.limited).toBe(90 - o.ok);
    }
  }, 180_000);

  it("blocking a key on one instance: every instance refuses it within 1 s", async () => {
    const key = await makeKey((await makeTeam()).team_id);
    // every instance knows (caches) the key
    for (const inst of fleet.instances) {
      const r = await fleet.chat({ model: "free", messages: msg() }, { key: key.key, instance: inst.index });
      expect(r.status).toBe(200);
    }
    const t0 = performance.now();
    await fleet.admin("/key/block", { key: key.key }, { instance: 0 });
    const refusedAfter = await Promise.all(
      fleet.instances.map(async (inst) => {
        for (;;) {
          const r = await fleet.chat({ model: "free", messages: msg() }, { key: key.key, instance: inst.index });
          if (r.status === 401) {
            expect(r.json.error.message).toContain("blocked");
            return performance.now() - t0;
          }
          expect(r.status).toBe(200);
          if (performance.now() - t0 > 10_000) return Number.POSITIVE_INFINITY;
          await sleep(10);
        }
      }),
    );
    console.log(
      `[fleet ${kind}] block refused after ${refusedAfter.map((ms) => `${ms.toFixed(0)} ms`).join(", ")} (instances 0, 1, 2)`,
    );
    // An instance on Upstash has no pub/sub: it sees the change at its cache refresh (2 s), documented.
    for (const [i, ms] of refusedAfter.entries()) {
      expect(ms).toBeLessThan(kind === "upstash" && i === 2 ? 3_000 : 1_000);
    }
  }, 60_000);
});
