/**
 * Memory store, through the documented API, on the realistic population of issue 10 (bench/population.ts: 10,000
 * api keys, 100 teams, 1,000 users drawn uniformly from a fixed seed, estimates 100–999 tokens, actual usage 1–1.2×
 * the estimate), against rate-limiter-flexible's RateLimiterMemory doing the same work, sides interleaved:
 *
 * - the limiter: admit + settle of 3 descriptors (requests + tokens each) built with `scopes.apiKey(...)`,
 *   `scopes.team(...)`, `scopes.user(...)` (and the same as literals, spreads and class instances);
 * - the gate: the full request, 3 scopes (requests + tokens, max parallel on the key) and 3 budgets, one admission
 *   and one settle, against rate-limiter-flexible doing only the 6 limit consumes and 3 adjustments.
 */
import os from "node:os";
import type { BudgetSpec, PriceTable } from "@tollgate/budgets";
import { createLimiter, type Descriptor, scopes } from "@tollgate/core";
import { createGate } from "@tollgate/gate";
import { createMemoryStore } from "@tollgate/store-memory";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { fmt, HIGH, type Interleaved, measureInterleaved } from "./lib.js";
import { type DrawnRequest, population } from "./population.js";

/** Alternating slices of each side (see measureInterleaved): 10 rounds × 0.5 s. */
const ROUNDS = 10;
const SLICE_SECONDS = 0.5;

/** The limits every descriptor carries: high enough never to deny (the benchmark measures the admission path). */
const LIMITS = { requests: HIGH, tokens: HIGH };

type Build = (r: DrawnRequest) => Descriptor[];

/** The README's way: the builders. */
export const builders: Build = (r) => [
  scopes.apiKey(r.apiKey, LIMITS),
  scopes.team(r.team, LIMITS),
  scopes.user(r.user, LIMITS),
];

/** Object literals. */
export const literals: Build = (r) => [
  { scope: "api_key", value: r.apiKey, requests: HIGH, tokens: HIGH },
  { scope: "team", value: r.team, requests: HIGH, tokens: HIGH },
  { scope: "user", value: r.user, requests: HIGH, tokens: HIGH },
];

/** Spreads of a configured limits object (a shape a config loader produces). */
export const spreads: Build = (r) => [
  { scope: "api_key", value: r.apiKey, ...LIMITS },
  { scope: "team", value: r.team, ...LIMITS },
  { scope: "user", value: r.user, ...LIMITS },
];

/** Instances of an application's own class. */
class Scope implements Descriptor {
  readonly requests = HIGH;
  readonly tokens = HIGH;
  constructor(
    readonly scope: string,
    readonly value: string,
  ) {}
}
const instances: Build = (r) => [new Scope("api_key", r.apiKey), new Scope("team", r.team), new Scope("user", r.user)];

export function limiterSide(draw: (i: number) => DrawnRequest, build: Build): (i: number) => Promise<void> {
  const limiter = createLimiter({ store: createMemoryStore({ maxEntries: 400_000 }) });
  return async (i) => {
    const r = draw(i);
    const a = await limiter.admit(build(r), { tokens: r.estimate });
    if (a.ok) await a.reservation.settle({ tokens: r.actual });
  };
}

/**
 * rate-limiter-flexible doing the limit work of one request: 6 `consume` calls (3 scopes × requests/tokens, the
 * estimate on tokens), then one adjustment per tokens limiter by actual − estimate (`penalty` or `reward`).
 */
export function flexibleSide(draw: (i: number) => DrawnRequest): (i: number) => Promise<void> {
  const make = (prefix: string) => new RateLimiterMemory({ points: HIGH, duration: 60, keyPrefix: prefix });
  const [rk, rt, ru, tk, tt, tu] = ["rk", "rt", "ru", "tk", "tt", "tu"].map(make) as RateLimiterMemory[];
  return async (i) => {
    const r = draw(i);
    await Promise.all([
      rk!.consume(r.apiKey, 1),
      tk!.consume(r.apiKey, r.estimate),
      rt!.consume(r.team, 1),
      tt!.consume(r.team, r.estimate),
      ru!.consume(r.user, 1),
      tu!.consume(r.user, r.estimate),
    ]);
    const d = r.actual - r.estimate;
    if (d > 0) await Promise.all([tk!.penalty(r.apiKey, d), tt!.penalty(r.team, d), tu!.penalty(r.user, d)]);
    else if (d < 0) await Promise.all([tk!.reward(r.apiKey, -d), tt!.reward(r.team, -d), tu!.reward(r.user, -d)]);
  };
}

/** `bench-model`: $1 per million prompt tokens, $2 per million completion tokens. */
const PRICES: PriceTable = {
  "bench-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002", max_output_tokens: 4096 },
};
const KEY_LIMITS = { requests: HIGH, tokens: HIGH, maxParallel: 1_000_000 };

/** The full request through the gate: 3 scopes (max parallel on the key), 3 budgets, one admit, one settle. */
export function gateSide(draw: (i: number) => DrawnRequest): (i: number) => Promise<void> {
  const gate = createGate({ store: createMemoryStore({ maxEntries: 400_000 }), budgets: { prices: PRICES } });
  // budget specs as a proxy keeps them with each key, team and user (built once, reused: a request finds them with
  // its key's configuration, so the ring entry keeps them)
  const specs = new Map<string, BudgetSpec>();
  const spec = (scope: "key" | "team" | "user", id: string): BudgetSpec => {
    const k = `${scope}:${id}`;
    let s = specs.get(k);
    if (s === undefined) {
      s = { scope, id, maxBudget: "1000000", duration: scope === "user" ? "30d" : "1mo" };
      specs.set(k, s);
    }
    return s;
  };
  const budgetsOf = new WeakMap<DrawnRequest, BudgetSpec[]>();
  const budgets = (r: DrawnRequest): BudgetSpec[] => {
    let list = budgetsOf.get(r);
    if (list === undefined) {
      list = [spec("key", r.apiKey), spec("team", r.team), spec("user", r.user)];
      budgetsOf.set(r, list);
    }
    return list;
  };
  return async (i) => {
    const r = draw(i);
    const input = r.estimate >> 1;
    const a = await gate.admit({
      limits: [scopes.apiKey(r.apiKey, KEY_LIMITS), scopes.team(r.team, LIMITS), scopes.user(r.user, LIMITS)],
      tokens: { input, output: r.estimate - input },
      model: "bench-model",
      maxTokens: r.estimate - input,
      budgets: budgets(r),
    });
    if (!a.ok) throw new Error(`unexpected denial: ${a.reason}`);
    await a.ticket.settle({ inputTokens: input, outputTokens: r.actual - input });
  };
}

interface Row {
  name: string;
  run: Interleaved;
}

/**
 * One interleaved comparison. The warm-up draws `warmup` requests on each side first (every key is then known on
 * both sides, so the rows measure the steady state, not the first use of each key: compiling a key's budgets and
 * inserting its entries happen once per key).
 */
async function pair(
  name: string,
  ours: (i: number) => Promise<void>,
  theirs: (i: number) => Promise<void>,
  warmup = 1 << 16,
) {
  return { name, run: await measureInterleaved(ours, theirs, ROUNDS, SLICE_SECONDS, warmup) } satisfies Row;
}

async function boundedRss(): Promise<{ before: number; after: number; entries: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().rss;
  const store = createMemoryStore({ maxEntries: 100_000 });
  const limiter = createLimiter({ store });
  for (let i = 0; i < 1_000_000; i++) {
    const a = await limiter.admit([scopes.apiKey(`distinct-${i}`, { requests: 100, tokens: 100_000 })], { tokens: 10 });
    if (a.ok) await a.reservation.settle({ tokens: 12 });
  }
  gc?.();
  return { before, after: process.memoryUsage().rss, entries: store.size };
}

export default async function run(): Promise<string> {
  const load = os
    .loadavg()
    .map((l) => fmt(l, 2))
    .join(", ");
  const draw = population();
  const big = population(1 << 17, { keys: 100_000 });
  const rows: Row[] = [];
  rows.push(await pair("limiter, builders (`scopes.apiKey(...)`)", limiterSide(draw, builders), flexibleSide(draw)));
  rows.push(await pair("limiter, object literals", limiterSide(draw, literals), flexibleSide(draw)));
  rows.push(await pair("limiter, spreads of a limits object", limiterSide(draw, spreads), flexibleSide(draw)));
  rows.push(await pair("limiter, class instances", limiterSide(draw, instances), flexibleSide(draw)));
  rows.push(await pair("limiter, builders, 100,000 api keys", limiterSide(big, builders), flexibleSide(big), 1 << 18));
  const gateRows: Row[] = [];
  gateRows.push(await pair("gate: 3 scopes + lease + 3 budgets", gateSide(draw), flexibleSide(draw)));
  gateRows.push(await pair("gate: the same, 100,000 api keys", gateSide(big), flexibleSide(big), 1 << 18));
  const loadAfter = os
    .loadavg()
    .map((l) => fmt(l, 2))
    .join(", ");
  const rss = await boundedRss();
  const mb = (b: number) => fmt(b / 2 ** 20, 0);
  const line = ({ name, run }: Row) => {
    const [ours, theirs] = run.sides;
    return `| ${name} | ${fmt(ours!.perSecond)} | ${fmt(theirs!.perSecond)} | **${fmt(run.ratio, 2)}×** (${fmt(Math.min(...run.ratios), 2)}–${fmt(Math.max(...run.ratios), 2)}) | ${fmt(ours!.p50us, 1)} | ${fmt(ours!.p99us, 1)} | ${fmt(theirs!.p99us, 1)} |`;
  };
  const header = [
    "| Tollgate side | Tollgate req/s | rate-limiter-flexible req/s | ratio (min–max per round) | Tollgate p50 µs | Tollgate p99 µs | flexible p99 µs |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  const builder = rows[0]!.run.ratio;
  const gate = gateRows[0]!.run.ratio;
  const worstP99 = Math.max(...[...rows, ...gateRows].map((r) => r.run.sides[0]!.p99us));
  return [
    "## Memory store: the documented API on a realistic population",
    "",
    "Sequential calls from one process (one request in flight). Population (bench/population.ts): 10,000 api keys,",
    "100 teams, 1,000 users drawn uniformly from a fixed seed, token estimates 100–999, actual usage 1–1.2× the",
    "estimate; the 100,000-key rows draw from 100,000 keys. Both sides of each row draw the same requests and run in",
    `alternating slices (${ROUNDS} rounds × ${SLICE_SECONDS} s each, order flipped every round), so a burst of load`,
    "on this shared machine hits both; the ratio is the median of the per-round ratios. Each side first runs a",
    "warm-up that draws every key (65,536 requests; 262,144 for the 100,000-key rows): the rows are the steady state.",
    `Machine load (1, 5, 15 min): ${load} before the rows, ${loadAfter} after.`,
    "",
    "**Limiter: admit + settle, 3 descriptors (requests + tokens each).** rate-limiter-flexible's RateLimiterMemory",
    "does the same work: 6 `consume` calls (3 scopes × requests/tokens, the estimate on tokens), then 3 adjustments",
    "of the tokens by actual − estimate (`penalty`).",
    "",
    ...header,
    ...rows.map(line),
    "",
    "**The full request through `@tollgate/gate`**: 3 scopes (requests + tokens each, max parallel on the key, so an",
    "in-flight lease) and 3 USD budgets (key, team, user: cost holds), one `store.admit` and one `store.adjust`,",
    "against rate-limiter-flexible doing only the 6 limit consumes and 3 adjustments (no lease, no budgets).",
    "",
    ...header,
    ...gateRows.map(line),
    "",
    `Targets: limiter through the builders ≥ 2× rate-limiter-flexible (measured **${fmt(builder, 2)}×**); the full`,
    `request through the gate ≥ 1× (measured **${fmt(gate, 2)}×**); p99 < 20 µs (worst Tollgate p99 above:`,
    `**${fmt(worstP99, 1)} µs**, per admit + settle).`,
    "",
    `Bounded memory: 1,000,000 distinct scopes through a store capped at 100,000 entries → ${fmt(rss.entries)} entries, ` +
      `RSS ${mb(rss.before)} MiB before, ${mb(rss.after)} MiB after.`,
    "",
  ].join("\n");
}
