/**
 * Budgets: reserve + settle of one request under 3 budgets (key, team, user), through the documented API
 * (`budgets.reserve(...)`, `reservation.settle(usage)`), on the realistic population of issue 10 (bench/population.ts),
 * on the memory store and on a real standalone redis-server started for the run.
 */
import os from "node:os";
import { type BudgetSpec, createBudgets, type PriceTable } from "@tollgate/budgets";
import type { CounterStore } from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";
import { createRedisStore } from "@tollgate/store-redis";
import { startRedisServer } from "@tollgate/test-servers";
import { fmt, type Measured, measureConcurrent, measureSequential } from "./lib.js";
import { type DrawnRequest, population } from "./population.js";

const SECONDS = 5;

/** `bench-model`: $1 per million prompt tokens, $2 per million completion tokens. */
const PRICES: PriceTable = {
  "bench-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002", max_output_tokens: 4096 },
};

/**
 * The budget specs of a drawn request, as a proxy keeps them with each key, team and user (built once per identity
 * and reused; a request finds them with its key's configuration). Large enough never to deny.
 */
function specsOf(): (r: DrawnRequest) => BudgetSpec[] {
  const byId = new Map<string, BudgetSpec>();
  const spec = (scope: "key" | "team" | "user", id: string, duration: string): BudgetSpec => {
    const k = `${scope}:${id}`;
    let s = byId.get(k);
    if (s === undefined) {
      s = { scope, id, maxBudget: "1000000", duration, ...(scope === "key" ? { softBudget: "900000" } : {}) };
      byId.set(k, s);
    }
    return s;
  };
  const lists = new WeakMap<DrawnRequest, BudgetSpec[]>();
  return (r) => {
    let list = lists.get(r);
    if (list === undefined) {
      list = [spec("key", r.apiKey, "1mo"), spec("team", r.team, "1mo"), spec("user", r.user, "30d")];
      lists.set(r, list);
    }
    return list;
  };
}

function loop(store: CounterStore, draw: (i: number) => DrawnRequest) {
  const budgets = createBudgets({ store, prices: PRICES });
  const specs = specsOf();
  return async (i: number) => {
    const r = draw(i);
    const input = r.estimate >> 1;
    const res = await budgets.reserve({
      requestId: `req-${i}`,
      model: "bench-model",
      budgets: specs(r),
      inputTokens: input,
      maxTokens: r.estimate - input,
    });
    if (!res.ok) throw new Error(`unexpected denial: ${res.denial.message}`);
    const outcome = await res.reservation.settle({ inputTokens: input, outputTokens: r.actual - input });
    if (outcome.status !== "applied") throw new Error(`unexpected ${outcome.status}`);
  };
}

const row = (name: string, m: Measured) =>
  `| ${name} | ${fmt(m.perSecond)} | ${fmt(m.p50us, 1)} | ${fmt(m.p99us, 1)} | ${fmt(m.ops)} |`;

export default async function run(): Promise<string> {
  const load = os
    .loadavg()
    .map((l) => fmt(l, 2))
    .join(", ");
  const draw = population();
  const lines = [
    "## Budgets: reserve + settle under 3 budgets",
    "",
    "One request = `budgets.reserve(...)` (the worst-case cost held on the key, team and user budgets in one atomic",
    "`admit`) + `reservation.settle(usage)` (the actual cost added, the holds released and the ticket finished in one",
    "atomic `adjust`). Population: bench/population.ts (10,000 keys, 100 teams, 1,000 users, estimates 100–999",
    "tokens, actual 1–1.2× the estimate), calendar-monthly periods (30 days for users), a soft budget on keys.",
    `Machine load (1, 5, 15 min) at the start: ${load}.`,
    "",
    "| store | reserve+settle / s | p50 µs | p99 µs | requests |",
    "|---|---:|---:|---:|---:|",
  ];
  const memory = await measureSequential(loop(createMemoryStore({ maxEntries: 400_000 }), draw), SECONDS);
  lines.push(row("memory (sequential)", memory));

  let server: Awaited<ReturnType<typeof startRedisServer>> | undefined;
  try {
    server = await startRedisServer();
    const store = createRedisStore({ connection: server.url, timeoutMs: 2_000 });
    const fn = loop(store, draw);
    lines.push(row("redis standalone (sequential)", await measureSequential(fn, SECONDS, 2_000)));
    lines.push(row("redis standalone (64 concurrent)", await measureConcurrent(fn, 64, SECONDS)));
    await store.close();
  } catch (err) {
    lines.push("", `Redis section failed: ${(err as Error).message}`);
  } finally {
    await server?.stop();
  }
  lines.push("");
  return lines.join("\n");
}
