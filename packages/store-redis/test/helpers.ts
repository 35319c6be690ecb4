import type { AdmitBatch, WindowOp } from "@tollgate/core";
import type { Redis } from "ioredis";

export const uid = (): string => Math.random().toString(36).slice(2, 10);

/** A window with requests and tokens counters, as the engine builds for one descriptor. */
export function descriptor(key: string, requests: number, tokens: number, amountTokens = 10): WindowOp {
  return {
    key,
    windowMs: 60_000,
    algorithm: "fixed",
    counters: [
      { name: "requests", limit: requests, amount: 1, enforce: true },
      { name: "tokens", limit: tokens, amount: amountTokens, enforce: true },
    ],
  };
}

export function batchOf(windows: WindowOp[], lease?: { id: string; ttlMs: number }): AdmitBatch {
  return lease ? { windows, gauges: [], lease } : { windows, gauges: [] };
}

/** Calls per command of the server `admin` is connected to, from `INFO commandstats`, e.g. { evalsha: 3, get: 10 }. */
export async function commandStats(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info("commandstats");
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}
