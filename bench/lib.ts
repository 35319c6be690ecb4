/** Small shared helpers for the benchmark sections. */
import os from "node:os";

export interface Measured {
  ops: number;
  seconds: number;
  perSecond: number;
  p50us: number;
  p99us: number;
}

/** Runs `fn` sequentially for about `seconds` (after a warm-up), recording each call's latency. */
export async function measureSequential(
  fn: (i: number) => Promise<unknown>,
  seconds: number,
  warmup = 20_000,
): Promise<Measured> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const samples: number[] = [];
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const t0 = process.hrtime.bigint();
  let i = warmup;
  let now = t0;
  while (now < deadline) {
    const s = process.hrtime.bigint();
    await fn(i++);
    now = process.hrtime.bigint();
    samples.push(Number(now - s) / 1000);
  }
  const elapsed = Number(now - t0) / 1e9;
  return { ops: samples.length, seconds: elapsed, perSecond: samples.length / elapsed, ...percentiles(samples) };
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
  return { ops: samples.length, seconds: elapsed, perSecond: samples.length / elapsed, ...percentiles(samples) };
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
