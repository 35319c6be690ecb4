/**
 * A fleet of Tollgate proxies for tests and benchmarks: N real `tollgate --config …` processes sharing one store
 * (a redis-server, a Redis Cluster or the Upstash REST server) and one PostgreSQL database, each on a free loopback
 * port, and a client that spreads requests over them the way a load balancer does (round robin over the instances
 * in rotation).
 *
 * The fleet does not own the servers it is given (Redis, PostgreSQL, upstreams): tests start and stop those, so a
 * test can kill and restart them. It owns the proxy processes and stops them in {@link Fleet.stop}.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import { Pool } from "undici";
import { type ProxyProcess, startProxyProcess } from "./proxy-process.js";

/** The store every instance uses (the `general_settings.store` object of config.yaml). */
export type FleetStore =
  | { type: "redis"; url: string }
  | { type: "redis_cluster"; nodes: Array<{ host: string; port: number }> }
  | { type: "upstash"; url: string; token: string };

/** Options of {@link startFleet}. */
export interface FleetOptions {
  /** Proxy processes. @default 3 */
  instances?: number;
  /** The shared store. An instance may use another one (e.g. one instance on Upstash): see `storeFor`. */
  store: FleetStore;
  /** The store of instance `i` (0-based) when it differs from `store`. */
  storeFor?: (i: number) => FleetStore | undefined;
  /** Store settings shared by every instance: `failure_policy`, `timeout_ms`, `fallback_instances`, … */
  storeSettings?: Record<string, unknown>;
  /** Key prefix in the store. @default a random `tg-fleet-<hex>:` (tests sharing a server stay apart) */
  prefix?: string;
  /** `database_url` (PostgreSQL) of every instance; `"none"` runs them without a database. */
  databaseUrl: string;
  /** @default "sk-fleet-master" */
  masterKey?: string;
  /** config.yaml as an object (`model_list`, `litellm_settings`, `general_settings`); store, database and master key are added. */
  config: Record<string, unknown>;
  /** Extra environment of every process. */
  env?: Record<string, string | undefined>;
  /** Milliseconds to wait for each process to listen. @default 60000 (a loaded machine) */
  startTimeoutMs?: number;
}

/** One proxy process of the fleet. Its URL changes when it is restarted. */
export interface FleetInstance {
  readonly index: number;
  /** Current process (replaced by {@link FleetInstance.restart}). */
  readonly process: ProxyProcess;
  readonly url: string;
  /** Whether the load balancer sends it requests. */
  inRotation: boolean;
  /** Requests the load balancer has sent it that have not answered yet. */
  readonly outstanding: number;
  /** Whether the process is running. */
  readonly alive: boolean;
  /** Process id of the current process. */
  readonly pid: number;
  /** The config.yaml text it runs. */
  readonly configText: string;
  /** SIGKILL: a crash, nothing flushed. */
  kill9(): Promise<void>;
  /** SIGTERM (graceful: drains in-flight requests, flushes the ledger); resolves with the exit code. */
  terminate(): Promise<number | string>;
  /** Starts a new process with the same config (after a kill or a stop) and waits until it is ready. */
  restart(): Promise<void>;
  /** `/proc/<pid>/stat` user + system CPU of the current process, in microseconds (Linux). */
  cpuMicros(): number;
}

/** What one request through the fleet got. */
export interface FleetResponse {
  /** HTTP status, or 0 when the request failed at the connection level (see `error`). */
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body (undefined for a stream or a body that is not JSON). */
  json: any;
  text: string;
  /** The instance that answered (after failovers). */
  instance: number;
  /** Milliseconds from the first attempt to the end of the body. */
  ms: number;
  /** Wall-clock time (ms since epoch) the request was sent and its answer ended. */
  sentAt: number;
  endedAt: number;
  /** Connection-level error (no HTTP answer). */
  error?: Error;
  /** Instances tried before this one (failovers). */
  failovers: number;
  /** `x-litellm-call-id`. */
  callId: string | undefined;
  /** `x-litellm-response-cost` in USD (JSON answers). */
  cost: number | undefined;
}

/** Options of one request. */
export interface FleetRequestOptions {
  /** Bearer key. @default the master key */
  key?: string;
  /** Send it to this instance (no round robin, no failover). */
  instance?: number;
  method?: string;
  headers?: Record<string, string>;
  /**
   * What a load balancer retries on another instance: a refused connection (nothing was sent) and the proxy's
   * `503 The proxy is shutting down` (refused before anything was counted). Nothing else is retried: a request
   * that may have been admitted is never sent twice. @default true (off when `instance` is given)
   */
  failover?: boolean;
  /** Read the body as it arrives: called with each chunk (streams). */
  onChunk?: (chunk: string) => void;
  /** Abort after this many ms (a client timeout). @default 120000 */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Something that happened to an instance (for reports and for telling requests apart by time). */
export interface FleetEvent {
  /** ms since epoch */
  at: number;
  instance: number;
  what: "out-of-rotation" | "sigterm" | "exited" | "sigkill" | "started" | "ready" | "in-rotation";
}

/** A fleet of proxy processes and its load balancer. */
export interface Fleet {
  readonly instances: FleetInstance[];
  /** What happened to the instances, in order. */
  readonly events: FleetEvent[];
  readonly masterKey: string;
  readonly prefix: string;
  readonly databaseUrl: string;
  /** Next instance of the rotation (round robin). */
  pick(): FleetInstance;
  /** One request through the load balancer (or to `options.instance`). */
  request(path: string, body?: unknown, options?: FleetRequestOptions): Promise<FleetResponse>;
  /** `POST /v1/chat/completions`. */
  chat(body: Record<string, unknown>, options?: FleetRequestOptions): Promise<FleetResponse>;
  /** A management call with the master key on the next instance; throws unless it answers 2xx. */
  admin(path: string, body?: unknown, options?: FleetRequestOptions): Promise<any>;
  /** One query on the fleet's PostgreSQL database. */
  sql<T = any>(text: string, params?: unknown[]): Promise<T[]>;
  /** Waits until every live instance answers `/health/readiness` with 200 (or `timeoutMs`). */
  waitReady(timeoutMs?: number): Promise<void>;
  /**
   * SIGTERM rolling restart, one instance at a time, as an orchestrator does it: take the instance out of
   * rotation, wait until the requests already sent to it have answered (the balancer's connection draining), SIGTERM
   * it (it drains its own in-flight work and flushes its ledger), wait for its exit, start the new process, wait
   * until it is ready, put it back. Resolves with the exit codes.
   */
  rollingRestart(options?: {
    /** Pause between two instances. @default 0 */
    pauseMs?: number;
    /** Longest wait for the requests already sent to an instance before its SIGTERM. @default 10000 */
    balancerDrainMs?: number;
  }): Promise<Array<number | string>>;
  /** SIGTERM every instance (in parallel) and closes the client pools and the database connection. */
  stop(): Promise<void>;
}

const MASTER = "sk-fleet-master";

/** `/proc/<pid>/stat` utime + stime in microseconds (Linux: clock ticks of 1/100 s). */
export function processCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // fields after the command name (which may contain spaces) start after the last ')'
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) * 10_000;
}

function storeObject(store: FleetStore, settings: Record<string, unknown>, prefix: string): Record<string, unknown> {
  const base: Record<string, unknown> =
    store.type === "redis"
      ? { type: "redis", url: store.url }
      : store.type === "redis_cluster"
        ? { type: "redis_cluster", nodes: store.nodes.map((n) => `${n.host}:${n.port}`) }
        : { type: "upstash", url: store.url, token: store.token };
  return { ...base, prefix, ...settings };
}

/** Starts the fleet's processes in parallel and waits until each is ready. */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const n = options.instances ?? 3;
  const masterKey = options.masterKey ?? MASTER;
  const prefix = options.prefix ?? `tg-fleet-${randomBytes(4).toString("hex")}:`;
  const configFor = (i: number): string => {
    const cfg = structuredClone(options.config) as Record<string, any>;
    const gs = { ...(cfg.general_settings ?? {}) };
    gs.master_key = masterKey;
    gs.database_url = options.databaseUrl;
    gs.store = storeObject(options.storeFor?.(i) ?? options.store, options.storeSettings ?? {}, prefix);
    cfg.general_settings = gs;
    // JSON is YAML: no serializer needed, and no YAML quoting surprises.
    return JSON.stringify(cfg, null, 2);
  };
  const env = { LOG_LEVEL: "warn", ...options.env };
  const pools = new Map<string, Pool>();
  const poolFor = (url: string): Pool => {
    let p = pools.get(url);
    if (p === undefined) {
      p = new Pool(url, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });
      pools.set(url, p);
    }
    return p;
  };
  const startOne = (i: number) =>
    startProxyProcess({ config: configFor(i), env, startTimeoutMs: options.startTimeoutMs ?? 60_000 });

  const instances: FleetInstance[] = [];
  const outstanding: number[] = Array(n).fill(0);
  const events: FleetEvent[] = [];
  const note = (instance: number, what: FleetEvent["what"]) => events.push({ at: Date.now(), instance, what });
  const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => startOne(i)));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed !== undefined) {
    await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.stop("SIGKILL") : undefined)));
    throw failed.reason;
  }
  for (let i = 0; i < n; i++) {
    let proc = (started[i] as PromiseFulfilledResult<ProxyProcess>).value;
    const text = configFor(i);
    const inst: FleetInstance = {
      index: i,
      get process() {
        return proc;
      },
      get url() {
        return proc.url;
      },
      inRotation: true,
      get outstanding() {
        return outstanding[i]!;
      },
      get alive() {
        return proc.proc.exitCode === null && proc.proc.signalCode === null;
      },
      get pid() {
        return proc.proc.pid!;
      },
      configText: text,
      async kill9() {
        note(i, "sigkill");
        await proc.stop("SIGKILL");
        note(i, "exited");
      },
      async terminate() {
        note(i, "sigterm");
        const code = await proc.stop("SIGTERM");
        note(i, "exited");
        return code;
      },
      async restart() {
        if (inst.alive) await inst.kill9();
        const old = pools.get(proc.url);
        pools.delete(proc.url);
        void old?.destroy().catch(() => {});
        proc = await startOne(i);
        note(i, "started");
        await waitInstanceReady(inst, 60_000);
        note(i, "ready");
      },
      cpuMicros: () => processCpuMicros(proc.proc.pid!),
    };
    instances.push(inst);
  }

  let next = 0;
  const pick = (): FleetInstance => {
    for (let k = 0; k < instances.length; k++) {
      const inst = instances[next++ % instances.length]!;
      if (inst.inRotation && inst.alive) return inst;
    }
    throw new Error("no fleet instance is in rotation");
  };

  const once = async (
    inst: FleetInstance,
    path: string,
    body: unknown,
    o: FleetRequestOptions,
  ): Promise<Omit<FleetResponse, "instance" | "ms" | "failovers" | "sentAt" | "endedAt">> => {
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const signal = o.signal ?? AbortSignal.timeout(o.timeoutMs ?? 120_000);
    outstanding[inst.index]!++;
    try {
      const res = await poolFor(inst.url).request({
        method: (o.method ?? (payload === undefined ? "GET" : "POST")) as "GET",
        path,
        headers: {
          authorization: `Bearer ${o.key ?? masterKey}`,
          ...(payload === undefined ? {} : { "content-type": "application/json" }),
          ...o.headers,
        },
        body: payload,
        signal,
      });
      let text = "";
      res.body.setEncoding("utf8");
      for await (const chunk of res.body) {
        text += chunk;
        o.onChunk?.(chunk as string);
      }
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const cost = res.headers["x-litellm-response-cost"];
      const callId = res.headers["x-litellm-call-id"];
      return {
        status: res.statusCode,
        headers: res.headers,
        json,
        text,
        callId: typeof callId === "string" ? callId : undefined,
        cost: typeof cost === "string" ? Number(cost) : undefined,
      };
    } catch (error) {
      return {
        status: 0,
        headers: {},
        json: undefined,
        text: "",
        error: error as Error,
        callId: undefined,
        cost: undefined,
      };
    } finally {
      outstanding[inst.index]!--;
    }
  };

  const retryable = (r: Omit<FleetResponse, "instance" | "ms" | "failovers" | "sentAt" | "endedAt">): boolean => {
    if (r.status === 0) {
      const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
      return code === "ECONNREFUSED";
    }
    return (
      r.status === 503 && typeof r.json?.error?.message === "string" && /shutting down/i.test(r.json.error.message)
    );
  };

  const request = async (path: string, body?: unknown, o: FleetRequestOptions = {}): Promise<FleetResponse> => {
    const t0 = performance.now();
    const sentAt = Date.now();
    if (o.instance !== undefined) {
      const r = await once(instances[o.instance]!, path, body, o);
      return { ...r, instance: o.instance, ms: performance.now() - t0, failovers: 0, sentAt, endedAt: Date.now() };
    }
    const failover = o.failover ?? true;
    let failovers = 0;
    for (;;) {
      const inst = pick();
      const r = await once(inst, path, body, o);
      if (failover && retryable(r) && failovers < instances.length * 4) {
        failovers++;
        continue;
      }
      return { ...r, instance: inst.index, ms: performance.now() - t0, failovers, sentAt, endedAt: Date.now() };
    }
  };

  let db: pg.Pool | undefined;
  const sql = async <T>(text: string, params: unknown[] = []): Promise<T[]> => {
    if (db === undefined) {
      db = new pg.Pool({ connectionString: options.databaseUrl, max: 2, connectionTimeoutMillis: 10_000 });
      db.on("error", () => {}); // a server restarted by a test: the next query reconnects
    }
    const r = await db.query(text, params);
    return r.rows as T[];
  };

  const fleet: Fleet = {
    instances,
    events,
    masterKey,
    prefix,
    databaseUrl: options.databaseUrl,
    pick,
    request,
    chat: (body, o) => request("/v1/chat/completions", body, o),
    async admin(path, body, o = {}) {
      const r = await request(path, body, o);
      if (r.status < 200 || r.status >= 300) {
        throw new Error(`${path} answered ${r.status}: ${r.text.slice(0, 500)}`);
      }
      return r.json;
    },
    sql,
    async waitReady(timeoutMs = 60_000) {
      await Promise.all(instances.filter((i) => i.alive).map((i) => waitInstanceReady(i, timeoutMs)));
    },
    async rollingRestart(o = {}) {
      const codes: Array<number | string> = [];
      for (const inst of instances) {
        inst.inRotation = false;
        note(inst.index, "out-of-rotation");
        // Connection draining at the balancer (an ALB's deregistration delay, a Kubernetes preStop pause): requests
        // already sent to the instance finish before it gets the signal, so none is on the wire when it closes.
        // Long streams are left to the proxy's own drain after `balancerDrainMs`.
        const until = Date.now() + (o.balancerDrainMs ?? 10_000);
        while (inst.outstanding > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
        codes.push(await inst.terminate());
        await inst.restart();
        inst.inRotation = true;
        note(inst.index, "in-rotation");
        if (o.pauseMs) await new Promise((r) => setTimeout(r, o.pauseMs));
      }
      return codes;
    },
    async stop() {
      await Promise.all(instances.map((i) => i.process.stop("SIGTERM")));
      await Promise.all([...pools.values()].map((p) => p.destroy().catch(() => {})));
      await db?.end().catch(() => {});
    },
  };
  await fleet.waitReady();
  return fleet;
}

async function waitInstanceReady(inst: FleetInstance, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const res = await fetch(`${inst.url}/health/readiness`, { signal: AbortSignal.timeout(5_000) });
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return;
    } catch (err) {
      last = String(err);
    }
    if (!inst.alive) throw new Error(`fleet instance ${inst.index} exited:\n${inst.process.stderr()}`);
    if (Date.now() > deadline)
      throw new Error(`fleet instance ${inst.index} not ready within ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls `check` until it returns without throwing (or `timeoutMs`): waits for a condition instead of sleeping. */
export async function waitUntil<T>(check: () => T | Promise<T>, timeoutMs = 30_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Result of {@link runLoad}. */
export interface LoadResult {
  responses: FleetResponse[];
  /** Requests per second achieved. */
  rate: number;
  seconds: number;
}

/** Options of {@link runLoad} and {@link startLoad}. */
export interface LoadOptions {
  /** Requests in flight (closed loop: each worker sends its next request when the previous one answered). */
  concurrency: number;
  /** Stop after this many requests. */
  count?: number;
  /** Stop when this returns true (checked before each request). */
  until?: () => boolean;
  /** Each worker waits this long between its requests (a steady, moderate load). @default 0 */
  pauseMs?: number;
  onResponse?: (r: FleetResponse) => void;
}

/** What a load worker sends: a chat body by default, or another path. */
export type LoadRequest = (n: number) => { path?: string; body: unknown; options?: FleetRequestOptions };

/** Load through the fleet's load balancer until `count` requests were sent or `until()` says stop. */
export async function runLoad(fleet: Fleet, make: LoadRequest, o: LoadOptions): Promise<LoadResult> {
  const responses: FleetResponse[] = [];
  let sent = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      if (o.count !== undefined && sent >= o.count) return;
      if (o.until?.()) return;
      const n = sent++;
      const m = make(n);
      const r = await fleet.request(m.path ?? "/v1/chat/completions", m.body, m.options);
      responses.push(r);
      o.onResponse?.(r);
      if (o.pauseMs) await new Promise((res) => setTimeout(res, o.pauseMs));
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return { responses, rate: responses.length / seconds, seconds };
}

/** A steady load running in the background: read `responses` as they come, `stop()` to end it. */
export interface BackgroundLoad {
  /** Responses so far (grows while the load runs). */
  readonly responses: FleetResponse[];
  /** Resolves once `n` more responses than now have arrived (or `timeoutMs`: rejects). */
  more(n: number, timeoutMs?: number): Promise<void>;
  /** Stops sending, waits for the requests in flight, resolves with everything. */
  stop(): Promise<LoadResult>;
}

/** Starts {@link runLoad} in the background. */
export function startLoad(fleet: Fleet, make: LoadRequest, o: Omit<LoadOptions, "until" | "count">): BackgroundLoad {
  let stopped = false;
  const responses: FleetResponse[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const done = runLoad(fleet, make, {
    ...o,
    until: () => stopped,
    onResponse: (r) => {
      responses.push(r);
      o.onResponse?.(r);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (responses.length >= waiters[i]!.n) {
          waiters[i]!.resolve();
          waiters.splice(i, 1);
        }
      }
    },
  });
  return {
    responses,
    more(n, timeoutMs = 60_000) {
      const target = responses.length + n;
      return new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`the load got ${responses.length} of ${target} responses in ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          n: target,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
    async stop() {
      stopped = true;
      return done;
    },
  };
}
