/**
 * Where the Redis CPU of one admission goes: runs the real admit script cut short at each phase (and the full
 * adjust script) against a fresh redis-server and prints the server's own time per call (`INFO commandstats`
 * usec_per_call), for the benchmark request (3 descriptors, requests + tokens each). Not part of `pnpm bench`:
 * run `pnpm bench:lua` when working on the scripts.
 */
import { ADJUST_SCRIPT, ADMIT_SCRIPT, encodeAdjust, encodeAdmit, type ScriptCall } from "@tollgate/redis-scripts";
import { startRedisServer } from "@tollgate/test-servers";
import { Redis } from "ioredis";
import { HIGH } from "./lib.js";

const CALLS = 20_000;
const IN_FLIGHT = 32;

const windows = (i: number) =>
  [`{api_key:k${i % 1000}}`, `{team:t${i % 50}}`, `{user:u${i % 200}}`].map((key) => ({
    key,
    windowMs: 60_000,
    algorithm: "fixed" as const,
    counters: [
      { name: "requests", limit: HIGH, amount: 1, enforce: true },
      { name: "tokens", limit: HIGH, amount: 500, enforce: true },
    ],
  }));
const admit = (i: number) => encodeAdmit({ windows: windows(i), gauges: [] }, { prefix: "lua-cost:" });
const adjust = (i: number, readBack = true) =>
  encodeAdjust(
    {
      readBack,
      windows: windows(i).map((w) => ({ ...w, expectStart: 1, counters: [{ name: "tokens", delta: -80 }] })),
    },
    { prefix: "lua-cost:" },
  );

/** The admit script ending right before `marker` (then returning 1). */
function admitUntil(marker: string): string {
  const at = ADMIT_SCRIPT.source.indexOf(marker);
  if (at < 0) throw new Error(`marker not found in the admit script: ${marker}`);
  return `${ADMIT_SCRIPT.source.slice(0, at)}\nreturn 1\n`;
}

async function usecPerCall(client: Redis, source: string, make: (i: number) => ScriptCall): Promise<number> {
  const sha = (await client.script("LOAD", source)) as string;
  await client.config("RESETSTAT");
  for (let i = 0; i < CALLS; i += IN_FLIGHT) {
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, (_, k) => {
        const c = make(i + k);
        return client.evalsha(sha, c.keys.length, ...c.keys, ...c.args);
      }),
    );
  }
  const stats = await client.info("commandstats");
  return Number(/cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(stats)?.[1]);
}

const server = await startRedisServer();
const client = new Redis(server.url);
try {
  const call = admit(0);
  console.log(`admit: ${call.keys.length} KEYS, ${call.args.length} ARGV; adjust: ${adjust(0).keys.length} KEYS`);
  const phases: Array<[string, string]> = [
    ["helpers defined, KEYS/ARGV received", admitUntil("local now = clock")],
    ["+ server TIME", admitUntil("local id = ARGV[2]")],
    ["+ layout pass", admitUntil("-- Read phase")],
    ["+ MGET of starts and values", admitUntil("local holds_in_use")],
    ["+ EXISTS of hold keys", admitUntil("local dkind, da, db")],
    ["+ checks of every counter", admitUntil("local inflight = {}")],
    ["full admit (writes, reply)", ADMIT_SCRIPT.source],
  ];
  for (const [name, source] of phases) {
    console.log(`${name.padEnd(38)} ${(await usecPerCall(client, source, admit)).toFixed(2)} µs/call (cumulative)`);
  }
  console.log(
    `${"full adjust (settle of the 3 windows)".padEnd(38)} ${(await usecPerCall(client, ADJUST_SCRIPT.source, adjust)).toFixed(2)} µs/call`,
  );
  console.log(
    `${"  the same without read-back (engine)".padEnd(38)} ${(await usecPerCall(client, ADJUST_SCRIPT.source, (i) => adjust(i, false))).toFixed(2)} µs/call`,
  );
  console.log(
    `${"trivial script (return 1)".padEnd(38)} ${(await usecPerCall(client, "return 1", () => ({ script: ADMIT_SCRIPT, keys: ["lua-cost:x"], args: [] }))).toFixed(2)} µs/call`,
  );
} finally {
  client.disconnect();
  await server.stop();
}
