/**
 * One caller process of a drill (see drills.ts): it creates a Redis store with the options it is given (the
 * defaults unless a drill says otherwise), waits for the common start time, fires its share of a burst of concurrent
 * requests, settles every admitted one (retrying on STORE_UNAVAILABLE, as a caller does after a timeout), then
 * flushes what the store still has to send and reports every outcome to the parent over IPC.
 *
 * A request is what the gate asks of the store: one admission with a ticket (3 rate-limit windows on different
 * hash slots, a budget window holding a cost on a 4th, an in-flight gauge) and one ticketed settle (tokens and cost
 * moved from the estimate to the actual, the hold and the gauge released).
 */
import type { AdjustBatch, AdmitBatch, AdmitResult, TollgateError } from "@tollgate/core";
import { createRedisStore, type RedisStoreOptions } from "@tollgate/store-redis";

export interface DrillRequestSpec {
  /** The base keys: 3 rate-limit scopes and a budget. */
  keys: { apiKey: string; team: string; user: string; budget: string };
  /** Requests limit on the api key window (the binding one); every other limit is high. */
  requestLimit: number;
  /** In-flight limit on the api key. */
  maxParallel: number;
  estimate: number;
  actual: number;
  /** Cost held on the budget at admission, and charged at settle. */
  holdCost: number;
  actualCost: number;
  leaseTtlMs: number;
  keepMs: number;
  windowMs: number;
}

export interface DrillWorkerConfig {
  worker: number;
  topology: "standalone" | "cluster";
  url?: string;
  nodes?: Array<{ host: string; port: number }>;
  prefix: string;
  /** JSON-able store options on top of the defaults. */
  store: Pick<RedisStoreOptions, "failurePolicy" | "timeoutMs" | "retryIntervalMs" | "fallbackInstances">;
  requests: number;
  spec: DrillRequestSpec;
  /** How long a caller keeps retrying a settle that fails with STORE_UNAVAILABLE, and how often. */
  settleDeadlineMs: number;
  settleRetryMs: number;
  /** Spread of the burst: each request starts at a random time within this many ms after the start. */
  spreadMs: number;
  /**
   * Warm the store before reporting ready (one read over every key: connections up, scripts loaded), as a process
   * already serving traffic is; without it the burst meets a cold client.
   */
  warm: boolean;
}

/** What happened to one request, as its caller saw it. */
export interface DrillOutcome {
  /** `admitted` by Redis, `fallback` / `open` by the failure policy, `denied`, or `failed` (an error). */
  admission: "admitted" | "fallback" | "open" | "denied" | "failed";
  error?: string;
  admitMs: number;
  /** When the admission answered (ms since epoch, local clock). */
  answeredAt: number;
  /** Settle: applied, duplicate (its ticket was finished already), gave up, or none (not admitted). */
  settle: "applied" | "duplicate" | "unknown" | "gave-up" | "none";
  settleMs: number;
  settleAttempts: number;
}

export interface DrillWorkerReport {
  worker: number;
  outcomes: DrillOutcome[];
  /** Replays and compensations still waiting after the final flush (should be 0). */
  pendingAfterFlush: number;
}

type Message = { type: "go"; at: number } | { type: "config"; config: DrillWorkerConfig };

const send = (m: unknown) => process.send?.(m);

function batches(spec: DrillRequestSpec, id: string) {
  const { apiKey, team, user, budget } = spec.keys;
  const limitWindow = (key: string, requests: number) => ({
    key,
    windowMs: spec.windowMs,
    algorithm: "fixed" as const,
    noHolds: true,
    counters: [
      { name: "requests", limit: requests, amount: 1, enforce: true },
      { name: "tokens", limit: 1e12, amount: spec.estimate, enforce: true },
    ],
  });
  const admit: AdmitBatch = {
    windows: [
      limitWindow(apiKey, spec.requestLimit),
      limitWindow(team, 1e12),
      limitWindow(user, 1e12),
      {
        key: budget,
        windowMs: spec.windowMs,
        algorithm: "fixed",
        counters: [{ name: "spend", limit: 1e15, amount: 0, hold: spec.holdCost, enforce: true }],
      },
    ],
    gauges: [{ key: apiKey, name: "max_parallel_requests", limit: spec.maxParallel, enforce: true }],
    lease: { id, ttlMs: spec.leaseTtlMs },
    ticket: true,
  };
  const settle = (r: AdmitResult): AdjustBatch => ({
    readBack: false,
    windows: [
      ...[apiKey, team, user].map((key, i) => ({
        key,
        windowMs: spec.windowMs,
        algorithm: "fixed" as const,
        noHolds: true,
        expectStart: r.windows[i]!.start,
        counters: [{ name: "tokens", delta: spec.actual - spec.estimate }],
      })),
      {
        key: budget,
        windowMs: spec.windowMs,
        algorithm: "fixed" as const,
        expectStart: r.windows[3]!.start,
        counters: [{ name: "spend", delta: spec.actualCost }],
      },
    ],
    release: {
      id,
      gauges: [{ key: apiKey, name: "max_parallel_requests" }],
      holds: [{ key: budget, name: "spend" }],
      windows: [apiKey, team, user, budget],
    },
    ticket: { id, finish: "settle", keepMs: spec.keepMs },
  });
  return { admit, settle };
}

const code = (err: unknown) => (err as TollgateError | undefined)?.code ?? String(err);

async function run(config: DrillWorkerConfig): Promise<void> {
  const store = createRedisStore({
    ...(config.topology === "cluster" ? { cluster: { nodes: config.nodes! } } : { connection: config.url! }),
    prefix: config.prefix,
    ...config.store,
  });
  if (config.warm) {
    const { apiKey, team, user, budget } = config.spec.keys;
    await store.read({
      windows: [apiKey, team, user, budget].map((key) => ({
        key,
        windowMs: config.spec.windowMs,
        algorithm: "fixed" as const,
        counters: ["requests"],
      })),
      gauges: [],
    });
  }
  send({ type: "ready" });
  const go = await new Promise<number>((resolve) => {
    process.once("message", (m: Message) => {
      if (m.type === "go") resolve(m.at);
    });
  });
  await new Promise((r) => setTimeout(r, Math.max(0, go - Date.now())));
  const one = async (n: number): Promise<DrillOutcome> => {
    if (config.spreadMs > 0) await new Promise((r) => setTimeout(r, Math.random() * config.spreadMs));
    const id = `w${config.worker}.${n}.${Math.random().toString(36).slice(2, 8)}`;
    const { admit, settle } = batches(config.spec, id);
    const t0 = performance.now();
    let r: AdmitResult;
    try {
      r = await store.admit(admit);
    } catch (err) {
      return {
        admission: "failed",
        error: code(err),
        admitMs: performance.now() - t0,
        answeredAt: Date.now(),
        settle: "none",
        settleMs: 0,
        settleAttempts: 0,
      };
    }
    const admitMs = performance.now() - t0;
    const answeredAt = Date.now();
    if (!r.admitted) {
      return { admission: "denied", admitMs, answeredAt, settle: "none", settleMs: 0, settleAttempts: 0 };
    }
    const admission = r.degraded ?? "admitted";
    const t1 = performance.now();
    const deadline = Date.now() + config.settleDeadlineMs;
    let attempts = 0;
    for (;;) {
      attempts++;
      try {
        const s = await store.adjust(settle(r));
        const state = s.ticket === "finished" ? "duplicate" : s.ticket === "unknown" ? "unknown" : "applied";
        const settleMs = performance.now() - t1;
        return { admission, admitMs, answeredAt, settle: state, settleMs, settleAttempts: attempts };
      } catch (err) {
        if (code(err) !== "STORE_UNAVAILABLE" || Date.now() > deadline) {
          return {
            admission,
            admitMs,
            answeredAt,
            error: code(err),
            settle: "gave-up",
            settleMs: performance.now() - t1,
            settleAttempts: attempts,
          };
        }
        await new Promise((res) => setTimeout(res, config.settleRetryMs));
      }
    }
  };
  const outcomes = await Promise.all(Array.from({ length: config.requests }, (_, n) => one(n)));
  const pendingAfterFlush = await store.flush(config.settleDeadlineMs);
  await store.close();
  const report: DrillWorkerReport = { worker: config.worker, outcomes, pendingAfterFlush };
  send({ type: "report", report });
}

process.once("message", (m: Message) => {
  if (m.type === "config") {
    run(m.config).then(
      () => process.exit(0),
      (err: unknown) => {
        send({ type: "error", error: String((err as Error)?.stack ?? err) });
        process.exit(1);
      },
    );
  }
});
send({ type: "started" });
