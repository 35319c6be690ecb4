/**
 * Real `redis-server` processes for tests and benchmarks: a standalone server and a 3-master cluster,
 * each on free loopback ports with a temporary working directory. No Docker, no mocks.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const HOST = "127.0.0.1";
const INSTALL_HINT =
  "Tollgate's Redis tests start real redis-server processes. Install them with: apt-get install -y redis-server " +
  "(Debian/Ubuntu; the package provides both redis-server and redis-cli).";

/** A running standalone server. */
export interface RedisServerHandle {
  host: string;
  port: number;
  /** `redis://127.0.0.1:<port>` */
  url: string;
  /** Graceful stop (SIGTERM) and removal of the temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** Simulates a crash: SIGKILL, no persistence, the port stops answering at once. */
  kill9(): Promise<void>;
  /** Starts the server again on the same port (after `kill9` or `stop`), waiting until it answers PING. */
  restart(): Promise<void>;
  /**
   * Freezes the process (SIGSTOP): connections stay open and commands queue unanswered, as with a stalled or
   * overloaded Redis. Commands sent meanwhile run once {@link RedisServerHandle.resume} is called.
   */
  pause(): void;
  /** Lets a paused process run again (SIGCONT). */
  resume(): void;
}

/** One master of a test cluster. */
export interface RedisClusterNodeHandle {
  host: string;
  port: number;
  /** The hash slots it serves, as `[first, last]` ranges. */
  slots: Array<[number, number]>;
  /** SIGSTOP: see {@link RedisServerHandle.pause}. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** SIGKILL: a crash without persistence; the node's data is lost. */
  kill9(): Promise<void>;
  /** Starts the node again on its port with its cluster config (it rejoins with its slots, empty). */
  restart(): Promise<void>;
}

/** A running cluster of masters. */
export interface RedisClusterHandle {
  nodes: Array<{ host: string; port: number }>;
  /** Control of each master, in the order of `nodes`. */
  masters: RedisClusterNodeHandle[];
  /** The master serving a hash slot. */
  masterOf(slot: number): RedisClusterNodeHandle;
  /** Resolves when every live node reports `cluster_state:ok` (after a restart). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every node and removes the temporary directories. Idempotent. */
  stop(): Promise<void>;
}

/** Throws a clear, actionable error when a binary is missing; never a silent skip. */
function assertBinary(name: "redis-server" | "redis-cli"): void {
  const probe = spawnSync(name, ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new Error(`${name} was not found on PATH. ${INSTALL_HINT}`);
  }
}

/** Asks the OS for a free loopback TCP port. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Two free ports whose cluster bus port (`port + 10000`) is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (port + 10000 > 65535 || taken.has(port)) continue;
    if (await isPortFree(port + 10000)) return port;
  }
  throw new Error("could not find a free port pair for a cluster node");
}

async function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

/** Sends one inline command over a raw socket and returns the raw reply text (no client library needed). */
function rawCommand(port: number, command: string, timeoutMs = 500): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let data = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`timeout talking to ${HOST}:${port}`));
    }, timeoutMs);
    sock.once("error", (err) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    });
    sock.connect(port, HOST, () => sock.write(`${command}\r\n`));
    sock.on("data", (chunk) => {
      data += chunk.toString("utf8");
      // Simple replies end with CRLF; bulk replies carry a length line first.
      const bulk = /^\$(\d+)\r\n/.exec(data);
      const done = bulk ? data.length >= bulk[0].length + Number(bulk[1]) + 2 : data.endsWith("\r\n");
      if (done) {
        clearTimeout(timer);
        sock.end();
        resolve(data);
      }
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function serverArgs(port: number, dir: string, extra: string[]): string[] {
  return [
    "--port",
    String(port),
    "--bind",
    HOST,
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    "no",
    "--protected-mode",
    "no",
    "--daemonize",
    "no",
    "--loglevel",
    "warning",
    ...extra,
  ];
}

interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
}

function spawnServer(port: number, dir: string, extra: string[] = []): Proc {
  const child = spawn("redis-server", serverArgs(port, dir, extra), { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.stderr?.resume();
  return { child, exited };
}

async function killProc(proc: Proc | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill(signal);
  await proc.exited;
}

async function waitForPing(port: number): Promise<void> {
  // A server with a password answers NOAUTH: it is up all the same.
  await waitFor(`redis-server on port ${port}`, async () => /^(\+PONG|-NOAUTH)/.test(await rawCommand(port, "PING")));
}

/** Options of {@link startRedisServer}. */
export interface RedisServerOptions {
  /** `requirepass`: clients must AUTH with it (the handle's `url` carries it). */
  password?: string;
}

/**
 * Starts a standalone `redis-server` on a free loopback port with a temporary directory.
 * @example
 * const redis = await startRedisServer();
 * const client = new Redis(redis.url);
 * await redis.stop();
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServerHandle> {
  assertBinary("redis-server");
  const dir = mkdtempSync(join(tmpdir(), "tollgate-redis-"));
  const port = await freePort();
  const extra = options.password === undefined ? [] : ["--requirepass", options.password];
  let proc: Proc | undefined = spawnServer(port, dir, extra);
  let stopped = false;
  await waitForPing(port);
  return {
    host: HOST,
    port,
    url: `redis://${options.password === undefined ? "" : `:${encodeURIComponent(options.password)}@`}${HOST}:${port}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      proc?.child.kill("SIGCONT"); // a paused server would never see SIGTERM
      await killProc(proc, "SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
    async kill9() {
      await killProc(proc, "SIGKILL");
      proc = undefined;
    },
    async restart() {
      if (stopped) throw new Error("restart() after stop()");
      await killProc(proc, "SIGKILL");
      // The port is ours until someone else grabs it; retry briefly while the old socket closes.
      await waitFor(`port ${port} to be free`, () => isPortFree(port));
      proc = spawnServer(port, dir, extra);
      await waitForPing(port);
    },
    pause() {
      proc?.child.kill("SIGSTOP");
    },
    resume() {
      proc?.child.kill("SIGCONT");
    },
  };
}

/** The slot ranges each node serves, from `CLUSTER NODES` (by port). */
async function slotRanges(port: number): Promise<Map<number, Array<[number, number]>>> {
  const text = await runCli(["-h", HOST, "-p", String(port), "CLUSTER", "NODES"]);
  const out = new Map<number, Array<[number, number]>>();
  for (const line of text.split("\n")) {
    const parts = line.trim().split(" ");
    if (parts.length < 9 || !parts[2]!.includes("master")) continue;
    const nodePort = Number(/:(\d+)@/.exec(parts[1]!)?.[1]);
    const ranges: Array<[number, number]> = [];
    for (const r of parts.slice(8)) {
      if (r.startsWith("[")) continue; // slots being migrated
      const [a, b] = r.split("-").map(Number);
      ranges.push([a!, b ?? a!]);
    }
    out.set(nodePort, ranges);
  }
  return out;
}

function runCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(" ")} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Masters of the test cluster (no replicas). */
const CLUSTER_MASTERS = 3;

/**
 * Starts a cluster of 3 `redis-server --cluster-enabled yes` masters, joins them with
 * `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes` and waits for `cluster_state:ok` on every node.
 */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  assertBinary("redis-server");
  assertBinary("redis-cli");
  // Under heavy load a start can fail for reasons outside the code under test (a node's bus port taken between the
  // probe and the bind by another process, the join outrunning a slow node): each attempt cleans up after itself, the
  // next one starts afresh on new ports, and the last error is reported with every earlier one.
  const errors: string[] = [];
  for (let attempt = 1; attempt <= CLUSTER_START_ATTEMPTS; attempt++) {
    try {
      return await startRedisClusterOnce();
    } catch (err) {
      errors.push(`attempt ${attempt}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(`could not start a Redis Cluster:\n${errors.join("\n")}`);
}

/** Starts of a test cluster tried before giving up. */
const CLUSTER_START_ATTEMPTS = 3;

async function startRedisClusterOnce(): Promise<RedisClusterHandle> {
  const taken = new Set<number>();
  const nodes: Array<{ port: number; dir: string; proc: Proc }> = [];
  /** Stops every node started so far with `signal` and removes the temporary directories. */
  const stopAll = async (signal: NodeJS.Signals) => {
    await Promise.all(nodes.map((n) => killProc(n.proc, signal)));
    for (const n of nodes) rmSync(n.dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < CLUSTER_MASTERS; i++) {
      const port = await freeClusterPort(taken);
      taken.add(port);
      const dir = mkdtempSync(join(tmpdir(), `tollgate-cluster-${port}-`));
      const proc = spawnServer(port, dir, [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, "nodes.conf"),
        "--cluster-node-timeout",
        "2000",
      ]);
      nodes.push({ port, dir, proc });
    }
    await Promise.all(nodes.map((n) => waitForPing(n.port)));
    await runCli([
      "--cluster",
      "create",
      ...nodes.map((n) => `${HOST}:${n.port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    await waitFor(
      "cluster_state:ok on every node",
      async () => {
        const infos = await Promise.all(nodes.map((n) => rawCommand(n.port, "CLUSTER INFO")));
        return infos.every((info) => info.includes("cluster_state:ok"));
      },
      30_000,
    );
  } catch (err) {
    await stopAll("SIGKILL");
    throw err;
  }
  let stopped = false;
  const ranges = await slotRanges(nodes[0]!.port);
  const clusterArgs = (n: { dir: string }) => [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    join(n.dir, "nodes.conf"),
    "--cluster-node-timeout",
    "2000",
  ];
  const masters: RedisClusterNodeHandle[] = nodes.map((n) => ({
    host: HOST,
    port: n.port,
    slots: ranges.get(n.port) ?? [],
    pause() {
      n.proc.child.kill("SIGSTOP");
    },
    resume() {
      n.proc.child.kill("SIGCONT");
    },
    async kill9() {
      await killProc(n.proc, "SIGKILL");
    },
    async restart() {
      await killProc(n.proc, "SIGKILL");
      await waitFor(`port ${n.port} to be free`, () => isPortFree(n.port));
      n.proc = spawnServer(n.port, n.dir, clusterArgs(n));
      await waitForPing(n.port);
    },
  }));
  const waitHealthy = (timeoutMs = 30_000) =>
    waitFor(
      "cluster_state:ok on every node",
      async () => {
        const infos = await Promise.all(nodes.map((n) => rawCommand(n.port, "CLUSTER INFO")));
        return infos.every((info) => info.includes("cluster_state:ok"));
      },
      timeoutMs,
    );
  return {
    nodes: nodes.map((n) => ({ host: HOST, port: n.port })),
    masters,
    masterOf(slot: number) {
      const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
      if (!m) throw new Error(`no master serves slot ${slot}`);
      return m;
    },
    waitHealthy,
    async stop() {
      if (stopped) return;
      stopped = true;
      // A paused node would never see SIGTERM.
      for (const n of nodes) n.proc.child.kill("SIGCONT");
      await stopAll("SIGTERM");
    },
  };
}
