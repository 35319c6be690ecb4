/**
 * Budgets: reserve + settle of one request under 3 budgets (key, team, user; monthly, with soft budgets), on the
 * memory store and on a real standalone redis-server started for the run.
 */
import { type BudgetSpec, createBudgets } from "@tollgate/budgets";
import type { CounterStore } from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";
import { createRedisStore } from "@tollgate/store-redis";
import { startRedisServer } from "@tollgate/test-servers";
import { fmt, type Measured, measureConcurrent, measureSequential } from "./lib.js";

const SECONDS = 5;

/** Budgets large enough never to deny: we measure the reserve/settle path, not denials. */
function budgetsFor(i: number): BudgetSpec[] {
  return [
    { scope: "key", id: `k${i % 1000}`, maxBudget: "1000000", softBudget: "900000", duration: "1mo" },
    { scope: "team", id: `t${i % 50}`, maxBudget: "1000000", duration: "1mo" },
    { scope: "user", id: `u${i % 200}`, maxBudget: "1000000", duration: "30d" },
  ];
}

/** The spec objects a proxy would keep per key/team/user (built once, reused across requests). */
const SPECS = Array.from({ length: 1000 }, (_, i) => budgetsFor(i));
const USAGE = { inputTokens: 500, outputTokens: 180, cachedInputTokens: 100 };

function loop(store: CounterStore) {
  const budgets = createBudgets({ store });
  return async (i: number) => {
    const r = await budgets.reserve({
      requestId: `req-${i}`,
      model: "gpt-4o-mini",
      budgets: SPECS[i % 1000] as BudgetSpec[],
      inputTokens: 500,
      maxTokens: 256,
    });
    if (!r.ok) throw new Error(`unexpected denial: ${r.denial.message}`);
    await r.reservation.settle(USAGE);
  };
}

/**
 * The floor: the same store calls the engine makes (admit with 3 holds, adjust with 3 deltas + release),
 * hand-built, so the engine's own overhead is the difference.
 */
function storeOnly(store: CounterStore) {
  const W = 40 * 86_400_000;
  const win = (key: string) => ({
    key,
    windowMs: W,
    algorithm: "fixed" as const,
    counters: [{ name: "spend", limit: 1e15, amount: 0, hold: 203_600, enforce: true }],
  });
  return async (i: number) => {
    const keys = [`{budget:key:k${i % 1000}}:p`, `{budget:team:t${i % 50}}:p`, `{budget:user:u${i % 200}}:p`];
    const id = `lease-${i}`;
    await store.admit({ windows: keys.map(win), gauges: [], lease: { id, ttlMs: 600_000 } });
    await store.adjust({
      windows: keys.map((key) => ({
        key,
        windowMs: W,
        algorithm: "fixed" as const,
        counters: [{ name: "spend", delta: 183_000 }],
      })),
      release: { id, gauges: [], holds: keys.map((key) => ({ key, name: "spend" })) },
    });
  };
}

const row = (name: string, m: Measured) =>
  `| ${name} | ${fmt(m.perSecond)} | ${fmt(m.p50us, 1)} | ${fmt(m.p99us, 1)} | ${fmt(m.ops)} |`;

export default async function run(): Promise<string> {
  const lines = [
    "## Budgets: reserve + settle under 3 budgets",
    "",
    "One request = `reserve` (worst-case cost held on key, team and user budgets in one atomic `admit`) +",
    "`settle` (actual cost added and holds released in one atomic `adjust`). Prices from the default table",
    "(gpt-4o-mini), 1000 keys / 50 teams / 200 users, calendar-monthly periods.",
    "",
    "| store | reserve+settle / s | p50 µs | p99 µs | requests |",
    "|---|---:|---:|---:|---:|",
  ];
  const memory = await measureSequential(loop(createMemoryStore()), SECONDS);
  lines.push(row("memory (sequential)", memory));
  lines.push(
    row(
      "memory, the same store calls without the engine",
      await measureSequential(storeOnly(createMemoryStore()), SECONDS),
    ),
  );

  let server: Awaited<ReturnType<typeof startRedisServer>> | undefined;
  try {
    server = await startRedisServer();
    const store = createRedisStore({ connection: server.url, timeoutMs: 2_000 });
    const fn = loop(store);
    lines.push(row("redis standalone (sequential)", await measureSequential(fn, SECONDS, 2_000)));
    lines.push(row("redis standalone (64 concurrent)", await measureConcurrent(fn, 64, SECONDS)));
    await store.close();
  } catch (err) {
    lines.push("", `Redis section failed: ${(err as Error).message}`);
  } finally {
    await server?.stop();
  }
  lines.push(
    "",
    `Target on memory: >= 300,000 reserve+settle/s (measured ${fmt(memory.perSecond)}). The "without the engine" row is`,
    "the floor set by the store itself (one admit with 3 holds + one adjust with 3 deltas and a release).",
    "",
  );
  return lines.join("\n");
}
