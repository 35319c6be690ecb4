/**
 * Reliability drills: real caller processes against real Redis processes, with faults injected by signals, and
 * exact counts checked after the dust settles. Each drill answers its figures (admitted against the limit,
 * orphaned holds and leases, the slowest call, recovery time) and the discrepancies between what the callers were
 * told and what Redis holds; a drill passes when there are none. docs/reliability.md records them.
 *
 * The callers (drill-worker.ts) run the Redis store with default options unless a drill says otherwise, and do
 * what the gate does: one ticketed admission and one ticketed settle per request, retrying the settle on
 * STORE_UNAVAILABLE.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import calculateSlot from "cluster-key-slot";
import { Cluster, Redis } from "ioredis";
import type { DrillOutcome, DrillRequestSpec, DrillWorkerConfig, DrillWorkerReport } from "./drill-worker.js";
import type { RedisClusterHandle, RedisServerHandle } from "./redis.js";

export type { DrillOutcome, DrillWorkerReport } from "./drill-worker.js";

/** A fault injected while the burst runs. */
export type DrillFault =
  /** SIGSTOP of the standalone server, or of the Cluster master serving `key` (default: the api key's). */
  | { kind: "pause"; atMs: number; forMs: number; key?: "apiKey" | "team" | "user" | "budget" }
  /** SIGKILL of the Cluster master serving `key`, restarted (empty) after `restartAfterMs` when given. */
  | { kind: "kill9"; atMs: number; restartAfterMs?: number; key?: "apiKey" | "team" | "user" | "budget" };

export interface BurstDrillOptions {
  name: string;
  /** A dedicated server or cluster (drills pause and kill them). */
  server?: RedisServerHandle;
  cluster?: RedisClusterHandle;
  /** Caller processes. @default 3 */
  processes?: number;
  /** Requests over all processes, fired concurrently. @default 300 */
  requests?: number;
  /** Requests limit of the api key window. @default 50 */
  requestLimit?: number;
  /** In-flight limit of the api key. @default 1_000_000 */
  maxParallel?: number;
  /** Store options on top of the defaults (none by default: the drill is about the defaults). */
  store?: DrillWorkerConfig["store"];
  fault?: DrillFault;
  /** Requests start at random times within this many ms. @default 0 (one burst) */
  spreadMs?: number;
  /** How long callers retry a settle. @default 15_000 */
  settleDeadlineMs?: number;
}

export interface BurstDrillFigures {
  name: string;
  topology: "standalone" | "cluster";
  requests: number;
  requestLimit: number;
  /** Admissions answered by Redis, by the failure policy, denied, failed (by error code). */
  admitted: number;
  fallback: number;
  open: number;
  denied: number;
  failed: Record<string, number>;
  /** What Redis holds after the dust settled. */
  stored: { requests: number[]; tokens: number[]; spend: number; held: number; inFlight: number; openTickets: number };
  /** Settles: applied once (as the caller saw it), found finished, retries sent. */
  settled: number;
  settleDuplicates: number;
  settleRetries: number;
  settleGaveUp: number;
  slowestAdmitMs: number;
  slowestSettleMs: number;
  /** From the fault's end to the first admission Redis answered (ms), when the drill had a fault. */
  recoveryMs: number | undefined;
  /** Replays still waiting after the callers' final flush. */
  pendingAfterFlush: number;
  /** Differences between what callers were told and what Redis holds; empty when exact. */
  discrepancies: string[];
  /** Keys (of 4) on a master the drill killed: their counts were lost with it and are not compared. */
  lostWithNode: number;
  /** Wall time of the drill, ms. */
  wallMs: number;
}

const root = fileURLToPath(new URL("../../..", import.meta.url));
const workerPath = fileURLToPath(new URL("./drill-worker.ts", import.meta.url));
const uid = () => Math.random().toString(36).slice(2, 10);

/**
 * Base keys for the drill. On a cluster, the api key, team and user sit on three different masters (read from the
 * cluster's own slot map, not assumed) and the budget shares the team's master, so killing one master loses exactly
 * one of them.
 */
function spreadKeys(cluster: RedisClusterHandle | undefined): DrillRequestSpec["keys"] {
  const want: Array<[keyof DrillRequestSpec["keys"], string, number]> = [
    ["apiKey", "api_key", 0],
    ["team", "team", 1],
    ["user", "user", 2],
    ["budget", "budget:team", 1],
  ];
  const ports = cluster ? cluster.masters.map((m) => m.port) : [];
  const placeOf = (slot: number) =>
    cluster ? ports.indexOf(cluster.masterOf(slot).port) : Math.min(2, Math.floor(slot / 5462));
  const out = {} as DrillRequestSpec["keys"];
  for (const [field, scope, place] of want) {
    for (;;) {
      const key = `{${scope}:${uid()}}`;
      if (placeOf(calculateSlot(key)) === place) {
        out[field] = key;
        break;
      }
    }
  }
  return out;
}

interface Worker {
  child: ChildProcess;
  report: Promise<DrillWorkerReport>;
  ready: Promise<void>;
}

function startWorker(config: DrillWorkerConfig): Worker {
  const child = spawn(process.execPath, ["--import", "tsx", workerPath], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let onReady!: () => void;
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  const report = new Promise<DrillWorkerReport>((resolve, reject) => {
    child.on("message", (m: { type: string; report?: DrillWorkerReport; error?: string }) => {
      if (m.type === "started") child.send({ type: "config", config });
      else if (m.type === "ready") onReady();
      else if (m.type === "report") resolve(m.report!);
      else if (m.type === "error") reject(new Error(`drill worker ${config.worker}: ${m.error}`));
    });
    child.once("exit", (code) => reject(new Error(`drill worker ${config.worker} exited with ${code}`)));
  });
  return { child, report, ready };
}

/** Reads what Redis holds for the drill's keys. */
async function readState(
  client: Redis | Cluster,
  nodes: Redis[],
  prefix: string,
  keys: DrillRequestSpec["keys"],
): Promise<BurstDrillFigures["stored"]> {
  const k = (base: string, suffix: string) => `${prefix}${base}:${suffix}`;
  const num = async (key: string) => Number((await client.get(key)) ?? 0);
  const limitKeys = [keys.apiKey, keys.team, keys.user];
  const requests = await Promise.all(limitKeys.map((b) => num(k(b, "requests"))));
  const tokens = await Promise.all(limitKeys.map((b) => num(k(b, "tokens"))));
  const spend = await num(k(keys.budget, "spend"));
  const heldMap = await client.hgetall(k(keys.budget, "spend:held"));
  const held = Object.values(heldMap).reduce((s, v) => s + Number(v), 0);
  const inFlight = await client.zcard(k(keys.apiKey, "max_parallel_requests"));
  let openTickets = 0;
  for (const node of nodes) {
    const ticketKeys = await node.keys(`${prefix}*ticket:*`);
    for (const t of ticketKeys) if ((await node.get(t))?.startsWith("o")) openTickets++;
  }
  return { requests, tokens, spend, held, inFlight, openTickets };
}

/**
 * Runs a burst drill: `processes` caller processes fire `requests` concurrent requests (3 rate-limit scopes on
 * different hash slots, a budget hold, an in-flight lease), settle each admitted one, and report; a fault is
 * injected meanwhile when given. Then the drill reads Redis and compares.
 */
export async function runBurstDrill(o: BurstDrillOptions): Promise<BurstDrillFigures> {
  const topology = o.cluster ? "cluster" : "standalone";
  if (!o.cluster && !o.server) throw new Error("runBurstDrill needs a server or a cluster");
  const processes = o.processes ?? 3;
  const requests = o.requests ?? 300;
  const requestLimit = o.requestLimit ?? 50;
  const prefix = `drill:${uid()}:`;
  const spec: DrillRequestSpec = {
    keys: spreadKeys(o.cluster),
    requestLimit,
    maxParallel: o.maxParallel ?? 1_000_000,
    estimate: 500,
    actual: 420,
    holdCost: 1_000,
    actualCost: 700,
    leaseTtlMs: 30_000,
    keepMs: 60_000,
    windowMs: 600_000,
  };
  const started = Date.now();
  const workers = Array.from({ length: processes }, (_, worker) =>
    startWorker({
      worker,
      topology,
      url: o.server?.url,
      nodes: o.cluster?.nodes,
      prefix,
      store: o.store ?? {},
      requests: Math.floor(requests / processes) + (worker < requests % processes ? 1 : 0),
      spec,
      settleDeadlineMs: o.settleDeadlineMs ?? 15_000,
      settleRetryMs: 100,
      spreadMs: o.spreadMs ?? 0,
      // Faults hit processes already serving traffic; a plain burst meets cold clients (scripts loaded at creation).
      warm: o.fault !== undefined,
    }),
  );
  let faultEnd: number | undefined;
  try {
    await Promise.all(workers.map((w) => w.ready));
    const at = Date.now() + 100;
    for (const w of workers) w.child.send({ type: "go", at });
    const fault = o.fault;
    let faultDone: Promise<void> = Promise.resolve();
    if (fault) {
      const target = () => {
        if (o.server) return o.server;
        return o.cluster!.masterOf(calculateSlot(spec.keys[fault.key ?? "apiKey"]));
      };
      faultDone = (async () => {
        await new Promise((r) => setTimeout(r, Math.max(0, at + fault.atMs - Date.now())));
        const t = target();
        if (fault.kind === "pause") {
          t.pause();
          await new Promise((r) => setTimeout(r, fault.forMs));
          t.resume();
          faultEnd = Date.now();
        } else {
          if (!("kill9" in t)) throw new Error("kill9 needs a target");
          await t.kill9();
          if (fault.restartAfterMs !== undefined) {
            await new Promise((r) => setTimeout(r, fault.restartAfterMs));
            await t.restart();
            if (o.cluster) await o.cluster.waitHealthy();
            faultEnd = Date.now();
          }
        }
      })();
    }
    const reports = await Promise.all(workers.map((w) => w.report));
    await faultDone;
    return await figures(o, topology, prefix, spec, reports, faultEnd, Date.now() - started);
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill("SIGKILL");
  }
}

async function figures(
  o: BurstDrillOptions,
  topology: "standalone" | "cluster",
  prefix: string,
  spec: DrillRequestSpec,
  reports: DrillWorkerReport[],
  faultEnd: number | undefined,
  wallMs: number,
): Promise<BurstDrillFigures> {
  const all: DrillOutcome[] = reports.flatMap((r) => r.outcomes);
  const count = (f: (x: DrillOutcome) => boolean) => all.filter(f).length;
  const failed: Record<string, number> = {};
  for (const x of all) if (x.admission === "failed") failed[x.error ?? "?"] = (failed[x.error ?? "?"] ?? 0) + 1;
  const admitted = count((x) => x.admission === "admitted");
  const client = o.cluster ? new Cluster(o.cluster.nodes) : new Redis(o.server!.url);
  const nodes = o.cluster ? o.cluster.nodes.map((n) => new Redis(n.port, n.host)) : [new Redis(o.server!.url)];
  try {
    const stored = await readState(client, nodes, prefix, spec.keys);
    const redisSettled = all.filter((x) => x.admission === "admitted" && x.settle !== "gave-up").length;
    const discrepancies: string[] = [];
    // A master killed without persistence or replicas comes back empty: what its keys held is lost, not wrong.
    const killed =
      o.fault?.kind === "kill9" && o.cluster
        ? o.cluster.masterOf(calculateSlot(spec.keys[o.fault.key ?? "apiKey"]))
        : undefined;
    const lost = (key: string) => killed !== undefined && o.cluster!.masterOf(calculateSlot(key)) === killed;
    const expect = (key: string, what: string, got: number, want: number) => {
      if (!lost(key) && got !== want) discrepancies.push(`${what}: Redis holds ${got}, callers were told ${want}`);
    };
    const limitKeys = [spec.keys.apiKey, spec.keys.team, spec.keys.user];
    ["api key", "team", "user"].forEach((scope, i) => {
      expect(limitKeys[i]!, `${scope} requests`, stored.requests[i]!, admitted);
      expect(limitKeys[i]!, `${scope} tokens`, stored.tokens[i]!, redisSettled * spec.actual);
    });
    expect(spec.keys.budget, "budget spend", stored.spend, redisSettled * spec.actualCost);
    expect(spec.keys.budget, "orphaned holds", stored.held, 0);
    expect(spec.keys.apiKey, "orphaned leases", stored.inFlight, 0);
    if (stored.openTickets !== 0) discrepancies.push(`open tickets: ${stored.openTickets}`);
    if (admitted > spec.requestLimit && !lost(spec.keys.apiKey)) {
      discrepancies.push(`admitted ${admitted} over the limit ${spec.requestLimit}`);
    }
    const lostKeys = [spec.keys.apiKey, spec.keys.team, spec.keys.user, spec.keys.budget].filter(lost);
    const firstAfter =
      faultEnd === undefined
        ? undefined
        : Math.min(
            ...all
              .filter((x) => x.admission === "admitted" && x.answeredAt !== undefined && x.answeredAt >= faultEnd)
              .map((x) => x.answeredAt!),
          );
    return {
      name: o.name,
      topology,
      requests: all.length,
      requestLimit: spec.requestLimit,
      admitted,
      fallback: count((x) => x.admission === "fallback"),
      open: count((x) => x.admission === "open"),
      denied: count((x) => x.admission === "denied"),
      failed,
      stored,
      settled: count((x) => x.settle === "applied"),
      settleDuplicates: count((x) => x.settle === "duplicate"),
      settleRetries: all.reduce((s, x) => s + Math.max(0, x.settleAttempts - 1), 0),
      settleGaveUp: count((x) => x.settle === "gave-up"),
      slowestAdmitMs: Math.max(0, ...all.map((x) => x.admitMs)),
      slowestSettleMs: Math.max(0, ...all.map((x) => x.settleMs)),
      recoveryMs:
        firstAfter === undefined || !Number.isFinite(firstAfter) ? undefined : Math.max(0, firstAfter - faultEnd!),
      pendingAfterFlush: reports.reduce((s, r) => s + r.pendingAfterFlush, 0),
      discrepancies,
      lostWithNode: lostKeys.length,
      wallMs,
    };
  } finally {
    client.disconnect();
    for (const n of nodes) n.disconnect();
  }
}

const PAUSE_MID_BURST: DrillFault = { kind: "pause", atMs: 50, forMs: 1500 };
const PAUSE_UNDER_LOAD: DrillFault = { kind: "pause", atMs: 1000, forMs: 1500 };

/** One drill of the standard set: its options (without servers) and what it checks beyond exactness. */
export interface StandardDrill {
  options: Omit<BurstDrillOptions, "server" | "cluster">;
  topology: "standalone" | "cluster";
}

/** The drills `test/drills.test.ts` of store-redis asserts and `pnpm drills` prints (docs/reliability.md). */
export const STANDARD_DRILLS: StandardDrill[] = [
  { topology: "standalone", options: { name: "burst, standalone" } },
  { topology: "cluster", options: { name: "burst, cluster" } },
  // Frozen in the middle of a burst: most calls are in flight, callers retry their settles while Redis is frozen.
  {
    topology: "standalone",
    options: { name: "pause 1.5 s mid-burst, standalone, closed", spreadMs: 300, fault: PAUSE_MID_BURST },
  },
  {
    topology: "cluster",
    options: {
      name: "pause 1.5 s mid-burst of the api key's master, cluster, closed",
      spreadMs: 300,
      fault: PAUSE_MID_BURST,
    },
  },
  // Frozen under steady load (300 requests over 5 s): what each policy answers, and how fast it recovers.
  ...(["closed", "open", "fallback"] as const).map(
    (policy): StandardDrill => ({
      topology: "standalone",
      options: {
        name: `pause 1.5 s under load, standalone, ${policy}`,
        requestLimit: 200,
        spreadMs: 5000,
        fault: PAUSE_UNDER_LOAD,
        store: { failurePolicy: policy, fallbackInstances: 3 },
      },
    }),
  ),
  {
    topology: "cluster",
    options: {
      name: "pause 1.5 s under load of the api key's master, cluster, closed",
      requestLimit: 200,
      spreadMs: 5000,
      fault: PAUSE_UNDER_LOAD,
    },
  },
  ...(["closed", "fallback"] as const).map(
    (policy): StandardDrill => ({
      topology: "cluster",
      options: {
        name: `kill -9 of the user's master, cluster, ${policy}`,
        requests: 300,
        requestLimit: 150,
        spreadMs: 8000,
        fault: { kind: "kill9", atMs: 2000, restartAfterMs: 2000, key: "user" },
        store: { failurePolicy: policy, fallbackInstances: 3 },
      },
    }),
  ),
];

const ms = (n: number | undefined) => (n === undefined ? "–" : `${Math.round(n)}`);

/** One markdown table row per drill (the header is {@link DRILL_TABLE_HEADER}). */
export function drillRow(f: BurstDrillFigures): string {
  const failed = Object.entries(f.failed)
    .map(([code, n]) => `${n} ${code}`)
    .join(", ");
  return [
    f.name,
    `${f.requests} / ${f.requestLimit}`,
    `${f.admitted}${f.fallback ? ` + ${f.fallback} local` : ""}${f.open ? ` + ${f.open} open` : ""}`,
    `${f.denied}${failed ? `; ${failed}` : ""}`,
    `${f.stored.requests.join(" / ")}`,
    `${f.settled} (${f.settleDuplicates} dup., ${f.settleRetries} retries)`,
    `${f.stored.held} / ${f.stored.inFlight} / ${f.stored.openTickets}`,
    ms(f.slowestAdmitMs),
    ms(f.recoveryMs),
    f.discrepancies.length === 0 ? "exact" : f.discrepancies.join("; "),
  ].join(" | ");
}

export const DRILL_TABLE_HEADER = [
  "| drill | requests / limit | admitted by Redis (+ by the policy) | denied; failed | Redis requests (key / team / user) | settled once | orphaned holds / leases / open tickets | slowest admission ms | recovery ms | after the dust settles |",
  "|---|---|---|---|---|---|---|---:|---:|---|",
].join("\n");
