/**
 * Redis instructions per admit + settle, counted by callgrind (deterministic: independent of the machine's load).
 * Starts `redis-server` under `valgrind --tool=callgrind` with instrumentation off, warms every side up, then for
 * each side switches instrumentation on around N sequential admissions and again around their N settles
 * (`callgrind_control -i on|off`, a dump after each), and prints instructions per call from the dumps' totals.
 * Sides: Tollgate through the documented API (createLimiter + createRedisStore + scopes builders), LiteLLM v3's two
 * scripts on identical work, and the full request through @tollgate/gate. Not part of `pnpm bench`: run
 * `pnpm bench callgrind` (needs valgrind; about 2 minutes; writes its section of docs/benchmarks.md).
 */
import { execFileSync } from "node:child_process";
import { createLimiter, type Reservation, scopes } from "@tollgate/core";
import { createGate, type Ticket } from "@tollgate/gate";
import { createRedisStore } from "@tollgate/store-redis";
import { startCallgrindRedis } from "./callgrind-lib.js";
import { HIGH } from "./lib.js";
import { loadLiteLLMScripts } from "./litellm.js";
import { BENCH_PRICES, fullGateRequest, population } from "./population.js";

const N = Number(process.env.CALLGRIND_N ?? 1_000);
const WARMUP = 20_000;
const WINDOW_S = 60;
const pop = population();

interface Side {
  name: string;
  /** Makes request i's admission; answers its settle. */
  admit(i: number): Promise<() => Promise<unknown>>;
}

export default async function run(): Promise<string> {
  const REDIS_VERSION = /v=(\S+)/.exec(execFileSync("redis-server", ["--version"], { encoding: "utf8" }))?.[1] ?? "?";
  const cg = await startCallgrindRedis();
  const { client, measure } = cg;

  const uid = () => Math.random().toString(36).slice(2, 8);
  const limits = { requests: HIGH, tokens: HIGH };

  function tollgate(): Side {
    const limiter = createLimiter({ store: createRedisStore({ client, prefix: `cg:${uid()}:`, timeoutMs: 60_000 }) });
    return {
      name: "Tollgate limiter (3 scopes × requests + tokens)",
      async admit(i) {
        const p = pop(i);
        const a = await limiter.admit(
          [scopes.apiKey(p.apiKey, limits), scopes.team(p.team, limits), scopes.user(p.user, limits)],
          { tokens: p.estimate },
        );
        if (!a.ok) throw new Error("denied");
        const r: Reservation = a.reservation;
        return () => r.settle({ tokens: p.actual });
      },
    };
  }

  function fullRequest(): Side {
    const gate = createGate({
      store: createRedisStore({ client, prefix: `cg:${uid()}:`, timeoutMs: 60_000 }),
      budgets: { prices: BENCH_PRICES },
    });
    return {
      name: "Tollgate full request (gate: 3 scopes + max parallel + 3 budgets)",
      async admit(i) {
        const { request, usage } = fullGateRequest(pop(i), HIGH);
        const a = await gate.admit(request);
        if (!a.ok) throw new Error("denied");
        const t: Ticket = a.ticket;
        return () => t.settle(usage);
      },
    };
  }

  async function litellm(): Promise<Side | undefined> {
    const scripts = loadLiteLLMScripts();
    if (!scripts) return undefined;
    const checkSha = (await client.script("LOAD", scripts.checkAndIncrement)) as string;
    const incSha = (await client.script("LOAD", scripts.tokenIncrement)) as string;
    const prefix = `cg:${uid()}:ll:`;
    return {
      name: "LiteLLM v3's scripts (1 check of 6 descriptors + 1 increment of 3)",
      async admit(i) {
        const p = pop(i);
        const bases = [`{api_key:${p.apiKey}}`, `{team:${p.team}}`, `{user:${p.user}}`].map((b) => prefix + b);
        const keys: string[] = [];
        const args: Array<string | number> = [];
        for (const b of bases) {
          keys.push(`${b}:window`, `${b}:requests`, `${b}:window`, `${b}:tokens`);
          args.push(HIGH, 1, WINDOW_S, WINDOW_S, HIGH, p.estimate, WINDOW_S, WINDOW_S);
        }
        const r = (await client.evalsha(checkSha, keys.length, ...keys, ...args)) as number[];
        if (r[0] !== 0) throw new Error("denied");
        const d = p.actual - p.estimate;
        const tk = bases.map((b) => `${b}:tokens`);
        return () => client.evalsha(incSha, 3, ...tk, d, WINDOW_S, d, WINDOW_S, d, WINDOW_S);
      },
    };
  }

  try {
    const only = process.env.CALLGRIND_SIDES?.split(",");
    const all = [await litellm(), tollgate(), fullRequest()].filter((s): s is Side => s !== undefined);
    const sides = only ? all.filter((_, i) => only.includes(String(i))) : all;
    const rows: string[] = [];
    for (const side of sides) {
      // Warm-up right before measuring (the 60 s windows it opens are still current when measured): every side draws
      // the same requests.
      const t0 = Date.now();
      for (let i = 0; i < WARMUP; i += 50) {
        const settles = await Promise.all(Array.from({ length: 50 }, (_, j) => side.admit(i + j)));
        await Promise.all(settles.map((s) => s()));
      }
      if (Date.now() - t0 > 40_000) console.warn(`${side.name}: warm-up took ${Date.now() - t0} ms (windows may roll)`);
      const settles: Array<() => Promise<unknown>> = [];
      const base = WARMUP;
      const admitIr = await measure(async () => {
        for (let i = 0; i < N; i++) settles.push(await side.admit(base + i));
      });
      const settleIr = await measure(async () => {
        for (const s of settles) await s();
      });
      const a = admitIr / N;
      const s = settleIr / N;
      rows.push(
        `| ${side.name} | ${Math.round(a).toLocaleString("en-US")} | ${Math.round(s).toLocaleString("en-US")} | ${Math.round(a + s).toLocaleString("en-US")} |`,
      );
    }
    return [
      "## Redis instructions per admit + settle (callgrind)",
      "",
      `redis-server ${REDIS_VERSION} under \`valgrind --tool=callgrind\` (cron at 1 Hz, active expiry off: no time-driven work), ` +
        `instrumentation on only around ${N} sequential admissions and then their ${N} settles per side, right after ${WARMUP.toLocaleString("en-US")} warm-up requests ` +
        "(the realistic population, same draws for every side). Instructions do not depend on the machine's load, unlike rates and CPU time. " +
        "Sequential calls: each is read with its own read, so these include Redis's per-call network handling.",
      "",
      "| side | admit | settle | admit + settle |",
      "|---|---:|---:|---:|",
      ...rows,
      "",
    ].join("\n");
  } finally {
    await cg.stop();
  }
}
