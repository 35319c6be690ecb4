/**
 * Where the Redis CPU of one admit + settle goes: runs the real admit script cut short at each phase (and the full
 * adjust script) against a fresh redis-server and prints the server's own time per call (`INFO commandstats` usec),
 * for the benchmark request (3 scopes with requests + tokens, `noHolds` rate-limit windows, a ticket; the realistic
 * population of bench/population.ts), beside LiteLLM's two scripts on the same work. Phases run in alternating
 * rounds and the minimum is kept (the machine is shared). Not part of `pnpm bench`: run `pnpm bench:lua` when working
 * on the scripts.
 */
import { ADJUST_SCRIPT, ADMIT_SCRIPT, encodeAdjust, encodeAdmit, type ScriptCall } from "@tollgate/redis-scripts";
import { startRedisServer } from "@tollgate/test-servers";
import { Redis } from "ioredis";
import { HIGH } from "./lib.js";
import { loadLiteLLMScripts } from "./litellm.js";
import { population } from "./population.js";

const CALLS = 8_000;
const IN_FLIGHT = 32;
const ROUNDS = 5;
const pop = population();

const windows = (i: number, noHolds: boolean) => {
  const p = pop(i);
  return [`{api_key:${p.apiKey}}`, `{team:${p.team}}`, `{user:${p.user}}`].map((key) => ({
    key,
    windowMs: 60_000,
    algorithm: "fixed" as const,
    noHolds,
    counters: [
      { name: "requests", limit: HIGH, amount: 1, enforce: true },
      { name: "tokens", limit: HIGH, amount: p.estimate, enforce: true },
    ],
  }));
};
const admit =
  (prefix: string, noHolds = true) =>
  (i: number) =>
    encodeAdmit(
      { windows: windows(i, noHolds), gauges: [], lease: { id: `r${i}`, ttlMs: 30_000 }, ticket: true },
      { prefix },
      { key: `${prefix}ticket:r${i}`, ttlMs: 30_000 },
    );
const adjust =
  (prefix: string, noHolds = true) =>
  (i: number) => {
    const p = pop(i);
    return encodeAdjust(
      {
        readBack: false,
        windows: windows(i, noHolds).map((w) => ({
          ...w,
          expectStart: 1,
          counters: [{ name: "tokens", delta: p.actual - p.estimate }],
        })),
        release: { id: `r${i}`, gauges: [], holds: [] },
      },
      { prefix },
      { key: `${prefix}ticket:r${i}`, mode: "settle", keepMs: 60_000 },
    );
  };

/** The admit script ending right before `marker` (then returning 1). */
function admitUntil(marker: string): string {
  const at = ADMIT_SCRIPT.source.indexOf(marker);
  if (at < 0) throw new Error(`marker not found in the admit script: ${marker}`);
  return `${ADMIT_SCRIPT.source.slice(0, at)}\nreturn 1\n`;
}

/** Redis server CPU seconds (user + sys) so far: CPU time, unlike the usec of commandstats (wall time). */
async function redisCpu(client: Redis): Promise<number> {
  const info = await client.info("cpu");
  const read = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? Number.NaN);
  return read("used_cpu_user") + read("used_cpu_sys");
}

/** Redis CPU µs per call (reading the call and answering it included), from `INFO cpu`. */
async function usecPerCall(
  client: Redis,
  source: string,
  make: (i: number) => ScriptCall,
  base: number,
): Promise<number> {
  const sha = (await client.script("LOAD", source)) as string;
  const calls = Array.from({ length: CALLS }, (_, i) => make(base + i));
  const c0 = await redisCpu(client);
  for (let i = 0; i < CALLS; i += IN_FLIGHT) {
    await Promise.all(
      calls.slice(i, i + IN_FLIGHT).map((c) => client.evalsha(sha, c.keys.length, ...c.keys, ...c.args)),
    );
  }
  return (((await redisCpu(client)) - c0) * 1e6) / CALLS;
}

const server = await startRedisServer();
const client = new Redis(server.url);
try {
  const lit = loadLiteLLMScripts();
  const litCheck = (i: number): ScriptCall => {
    const p = pop(i);
    const keys: string[] = [];
    const args: string[] = [];
    for (const b of [`{api_key:${p.apiKey}}`, `{team:${p.team}}`, `{user:${p.user}}`].map((x) => `ll:${x}`)) {
      keys.push(`${b}:window`, `${b}:requests`, `${b}:window`, `${b}:tokens`);
      args.push(String(HIGH), "1", "60", "60", String(HIGH), String(p.estimate), "60", "60");
    }
    return { script: ADMIT_SCRIPT, keys, args };
  };
  const litInc = (i: number): ScriptCall => {
    const p = pop(i);
    const d = String(p.actual - p.estimate);
    const keys = [`{api_key:${p.apiKey}}`, `{team:${p.team}}`, `{user:${p.user}}`].map((x) => `ll:${x}:tokens`);
    return { script: ADJUST_SCRIPT, keys, args: [d, "60", d, "60", d, "60"] };
  };
  const a = admit("lc:");
  const phases: Array<[string, string, (i: number) => ScriptCall]> = [
    ["admit: helpers defined, KEYS/ARGV received", admitUntil("local now, tested = clock"), a],
    ["  + server TIME, header, layout pass", admitUntil("-- Read phase"), a],
    ["  + MGET of ticket, starts and values", admitUntil("local holds_in_use"), a],
    ["  + read and check every counter", admitUntil("\ncheck_missing(missing)\n\nlocal gk0"), a],
    ["  + wrong-type check of absent keys", admitUntil("local gk0 = ns"), a],
    ["full admit (writes, ticket, reply)", ADMIT_SCRIPT.source, a],
    ["full admit, windows without noHolds", ADMIT_SCRIPT.source, admit("lh:", false)],
    ["full adjust (settle of 3 token counters, ticket)", ADJUST_SCRIPT.source, adjust("lc:")],
    ["trivial script (return 1), 1 key", "return 1", () => ({ script: ADMIT_SCRIPT, keys: ["lc:x"], args: [] })],
  ];
  if (lit) {
    phases.push(["LiteLLM CHECK_AND_INCREMENT_BY_N (6 descriptors)", lit.checkAndIncrement, litCheck]);
    phases.push(["LiteLLM TOKEN_INCREMENT (3 counters)", lit.tokenIncrement, litInc]);
  }
  const best = phases.map(() => Number.POSITIVE_INFINITY);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [p, [, source, make]] of phases.entries()) {
      best[p] = Math.min(best[p]!, await usecPerCall(client, source, make, r * CALLS));
    }
  }
  const c = admit("lc:")(0);
  console.log(
    `admit: ${c.keys.length} KEYS, ${c.args.length} ARGV; adjust: ${adjust("lc:")(0).keys.length} KEYS, ${adjust("lc:")(0).args.length} ARGV`,
  );
  for (const [p, [name]] of phases.entries())
    console.log(`${name.padEnd(50)} ${best[p]!.toFixed(2)} µs Redis CPU/call (min of ${ROUNDS})`);
} finally {
  client.disconnect();
  await server.stop();
}
