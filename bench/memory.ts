/**
 * Memory store: admit + settle of a request under 3 descriptors (requests + tokens limits each), against
 * rate-limiter-flexible's RateLimiterMemory consuming the same 6 limits and adjusting the 3 token limits.
 */
import { createLimiter } from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { benchDescriptors, flexibleAdmitSettle, fmt, HIGH, type Measured, measureInterleaved } from "./lib.js";

/** Alternating slices of each side (see measureInterleaved): 10 rounds × 0.5 s. */
const ROUNDS = 10;
const SLICE_SECONDS = 0.5;

function tollgate(): (i: number) => Promise<void> {
  const limiter = createLimiter({ store: createMemoryStore() });
  return async (i) => {
    const a = await limiter.admit(benchDescriptors(i), { tokens: 500 });
    if (a.ok) await limiter.settle(a.reservation, { tokens: 420 });
  };
}

function flexible(): (i: number) => Promise<void> {
  const opts = { points: HIGH, duration: 60 };
  return flexibleAdmitSettle((name) => new RateLimiterMemory({ ...opts, keyPrefix: name }));
}

async function boundedRss(): Promise<{ before: number; after: number; entries: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().rss;
  const store = createMemoryStore({ maxEntries: 100_000 });
  const limiter = createLimiter({ store });
  for (let i = 0; i < 1_000_000; i++) {
    await limiter.admit([{ scope: "api_key", value: `distinct-${i}`, requests: 100, tokens: 100_000 }], { tokens: 10 });
  }
  gc?.();
  return { before, after: process.memoryUsage().rss, entries: store.size };
}

export default async function run(): Promise<string> {
  const run = await measureInterleaved(tollgate(), flexible(), ROUNDS, SLICE_SECONDS);
  const [ours, theirs] = run.sides as [Measured, Measured];
  const low = Math.min(...run.ratios);
  const high = Math.max(...run.ratios);
  const rss = await boundedRss();
  const mb = (b: number) => fmt(b / 2 ** 20, 0);
  return [
    "## Memory store: admit + settle, 3 descriptors (requests + tokens each)",
    "",
    "Sequential calls from one process (one request in flight), each admission followed by its settle.",
    `Both sides run in alternating slices (${ROUNDS} rounds × ${SLICE_SECONDS} s each, order flipped every round), so a burst of load on this shared machine hits both; the ratio is the median of the per-round ratios.`,
    "rate-limiter-flexible does the same work: 6 `consume` calls (3 scopes × requests/tokens), then 3 `reward`s.",
    "",
    "| implementation | admit+settle/s | p50 µs | p99 µs |",
    "|---|---:|---:|---:|",
    `| Tollgate memory store | ${fmt(ours.perSecond)} | ${fmt(ours.p50us, 1)} | ${fmt(ours.p99us, 1)} |`,
    `| rate-limiter-flexible RateLimiterMemory | ${fmt(theirs.perSecond)} | ${fmt(theirs.p50us, 1)} | ${fmt(theirs.p99us, 1)} |`,
    "",
    `**Ratio: ${fmt(run.ratio, 2)}×** rate-limiter-flexible's throughput (median of ${ROUNDS} rounds; lowest ${fmt(low, 2)}×, highest ${fmt(high, 2)}×; target ≥ 2×); ` +
      `Tollgate p99 ${fmt(ours.p99us, 1)} µs per admit+settle (target < 20 µs per admission).`,
    "",
    `Bounded memory: 1,000,000 distinct scopes through a store capped at 100,000 entries → ${fmt(rss.entries)} entries, ` +
      `RSS ${mb(rss.before)} MiB before, ${mb(rss.after)} MiB after.`,
    "",
  ].join("\n");
}
