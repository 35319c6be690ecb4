/** Small shared helpers for the benchmark sections. */
import os from "node:os";
import type { Descriptor } from "@tollgate/core";
import type { Redis } from "ioredis";

/** Limits high enough never to deny: the benchmarks measure the admission path. */
export const HIGH = 1e12;

/** The benchmark request: 3 descriptors (api key, team, user) with requests and tokens limits each. */
export function benchDescriptors(i: number): Descriptor[] {
  return [
    { scope: "api_key", value: `k${i % 1000}`, requests: HIGH, tokens: HIGH },
    { scope: "team", value: `t${i % 50}`, requests: HIGH, tokens: HIGH },
    { scope: "user", value: `u${i % 200}`, requests: HIGH, tokens: HIGH },
  ];
}

/** The subset of a rate-limiter-flexible limiter the peer workload uses. */
interface FlexibleLimiter {
  consume(key: string, points: number): Promise<unknown>;
  reward(key: string, points: number): Promise<unknown>;
}

/**
 * rate-limiter-flexible doing the work of one Tollgate admit + settle of {@link benchDescriptors}: 6 `consume`
 * calls (3 scopes × requests/tokens, 500 tokens reserved), then 3 `reward`s giving back the 80 unused tokens.
 * `create(name)` makes one limiter with a distinct key prefix.
 */
export function flexibleAdmitSettle(create: (name: string) => FlexibleLimiter): (i: number) => Promise<void> {
  const requests = [0, 1, 2].map((n) => create(`r${n}`));
  const tokens = [0, 1, 2].map((n) => create(`t${n}`));
  return async (i) => {
    const k = [`k${i % 1000}`, `t${i % 50}`, `u${i % 200}`];
    await Promise.all([
      requests[0]!.consume(k[0]!, 1),
      tokens[0]!.consume(k[0]!, 500),
      requests[1]!.consume(k[1]!, 1),
      tokens[1]!.consume(k[1]!, 500),
      requests[2]!.consume(k[2]!, 1),
      tokens[2]!.consume(k[2]!, 500),
    ]);
    await Promise.all([tokens[0]!.reward(k[0]!, 80), tokens[1]!.reward(k[1]!, 80), tokens[2]!.reward(k[2]!, 80)]);
  };
}

export interface Measured {
  /** Calls counted for the throughput. */
  ops: number;
  /** Every call `fn` received, warm-up and latency pass included (for per-call accounting of side effects). */
  calls: number;
  seconds: number;
  perSecond: number;
  p50us: number;
  p99us: number;
}

/**
 * Runs `fn` sequentially: first for throughput (no per-call timing, which would add its own overhead to every
 * call), then for about a third as long timing each call for the latency percentiles.
 */
export async function measureSequential(
  fn: (i: number) => Promise<unknown>,
  seconds: number,
  warmup = 20_000,
): Promise<Measured> {
  let i = 0;
  for (; i < warmup; i++) await fn(i);
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  let ops = 0;
  let now = t0;
  while (now < deadline) {
    for (let k = 0; k < 256; k++) await fn(i++);
    ops += 256;
    now = process.hrtime.bigint();
  }
  const elapsed = Number(now - t0) / 1e9;
  const samples: number[] = [];
  const latencyDeadline = now + BigInt(Math.round((seconds / 3) * 1e9));
  while (now < latencyDeadline) {
    const s = process.hrtime.bigint();
    await fn(i++);
    now = process.hrtime.bigint();
    samples.push(Number(now - s) / 1000);
  }
  return { ops, calls: i, seconds: elapsed, perSecond: ops / elapsed, ...percentiles(samples) };
}

/** Throughput of each side of {@link measureInterleaved}, with the ratio of the first side to the second. */
export interface Interleaved {
  /** Per side: calls per second over all its slices, and latency percentiles from a pass after them. */
  sides: Measured[];
  /** First side's rate over the second's, one per round (each round runs both sides back to back). */
  ratios: number[];
  /** Median of `ratios` (the mean of the two middle ones for an even count). */
  ratio: number;
}

/**
 * Runs two sequential workloads in alternating slices (`rounds` × `sliceSeconds` each, the order flipping every
 * round), so that both see the same machine: on a shared, noisy host a burst of load then lowers both sides of
 * one round instead of one side of the comparison. Reports the median of the per-round ratios; the latency
 * percentiles come from one short timed pass per side after the rounds.
 */
export async function measureInterleaved(
  a: (i: number) => Promise<unknown>,
  b: (i: number) => Promise<unknown>,
  rounds: number,
  sliceSeconds: number,
  warmup = 20_000,
): Promise<Interleaved> {
  const fns = [a, b];
  const next = [0, 0];
  for (const [side, fn] of fns.entries()) for (; next[side]! < warmup; next[side]!++) await fn(next[side]!);
  const ops = [0, 0];
  const secs = [0, 0];
  const ratios: number[] = [];
  const slice = async (side: number): Promise<number> => {
    const fn = fns[side]!;
    const t0 = process.hrtime.bigint();
    const deadline = t0 + BigInt(Math.round(sliceSeconds * 1e9));
    let n = 0;
    let now = t0;
    let i = next[side]!;
    while (now < deadline) {
      for (let k = 0; k < 256; k++) await fn(i++);
      n += 256;
      now = process.hrtime.bigint();
    }
    next[side] = i;
    const elapsed = Number(now - t0) / 1e9;
    ops[side]! += n;
    secs[side]! += elapsed;
    return n / elapsed;
  };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    const rate: number[] = [];
    for (const side of order) rate[side] = await slice(side);
    ratios.push(rate[0]! / rate[1]!);
  }
  const sides: Measured[] = [];
  for (const side of [0, 1]) {
    const base = next[side]!;
    const lat = await measureSequential((i) => fns[side]!(base + i), sliceSeconds / 2, 0);
    sides.push({
      ...lat,
      ops: ops[side]!,
      calls: base + lat.calls,
      seconds: secs[side]!,
      perSecond: ops[side]! / secs[side]!,
    });
  }
  const sorted = [...ratios].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  const ratio = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { sides, ratios, ratio };
}

/** Runs `fn` with `concurrency` workers for about `seconds`, recording each call's latency. */
export async function measureConcurrent(
  fn: (i: number) => Promise<unknown>,
  concurrency: number,
  seconds: number,
): Promise<Measured> {
  const samples: number[] = [];
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (process.hrtime.bigint() < deadline) {
        const s = process.hrtime.bigint();
        await fn(i++);
        samples.push(Number(process.hrtime.bigint() - s) / 1000);
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    ops: samples.length,
    calls: samples.length,
    seconds: elapsed,
    perSecond: samples.length / elapsed,
    ...percentiles(samples),
  };
}

export function percentiles(samples: number[]): { p50us: number; p99us: number } {
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { p50us: at(0.5), p99us: at(0.99) };
}

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  return `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

/** Calls per command summed over `nodes`, from `INFO commandstats`. */
export async function commandStats(nodes: Redis[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const node of nodes) {
    const info = await node.info("commandstats");
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
    }
  }
  return out;
}

/** Redis server CPU (user + sys) used so far, summed over `nodes`, in µs, from `INFO cpu`. */
export async function redisCpuMicros(nodes: Redis[]): Promise<number> {
  let sum = 0;
  for (const node of nodes) {
    const info = await node.info("cpu");
    const read = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
    sum += (read("used_cpu_user") + read("used_cpu_sys")) * 1e6;
  }
  return sum;
}
