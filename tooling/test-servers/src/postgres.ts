/**
 * A real PostgreSQL server for tests and benchmarks: `initdb` into a temporary directory and a `postgres` process on
 * a free loopback port, stopped (and the directory removed) afterwards. No Docker, no mocks.
 *
 * `initdb` and `postgres` refuse to run as root: when this process is root they run as the `postgres` system user
 * (created by the Debian package), otherwise as the current user.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

const HOST = "127.0.0.1";
const INSTALL_HINT =
  "Tollgate's database tests start a real PostgreSQL server. Install it with: apt-get install -y postgresql " +
  "(Debian/Ubuntu; the binaries live in /usr/lib/postgresql/<version>/bin and need not be on PATH).";

/** A running server. */
export interface PostgresHandle {
  host: string;
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication on loopback). */
  url: string;
  /** A fresh, empty database on this server; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Graceful stop (SIGTERM, "smart" shutdown) and removal of the temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** Simulates a crash: SIGKILL of the postmaster; the port stops answering at once (data stays on disk). */
  kill9(): Promise<void>;
  /** Starts the server again on the same port and data (after `kill9`), waiting until it accepts connections. */
  restart(): Promise<void>;
}

/** Options of {@link startPostgres}. */
export interface StartPostgresOptions {
  /**
   * Where `initdb` and `postgres` are. Default: `PATH`, then the newest `/usr/lib/postgresql/<version>/bin`.
   */
  binDir?: string;
}

/** The directory holding `initdb` and `postgres`, or a clear error with install instructions. */
export function findPostgresBin(binDir?: string): string {
  const candidates: string[] = [];
  if (binDir !== undefined) candidates.push(binDir);
  else {
    for (const dir of (process.env.PATH ?? "").split(":")) if (dir) candidates.push(dir);
    const root = "/usr/lib/postgresql";
    if (existsSync(root)) {
      const versions = readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a));
      for (const v of versions) candidates.push(join(root, v, "bin"));
    }
  }
  for (const dir of candidates) {
    if (existsSync(join(dir, "initdb")) && existsSync(join(dir, "postgres"))) return dir;
  }
  throw new Error(
    `initdb/postgres were not found (looked in ${binDir === undefined ? "PATH and /usr/lib/postgresql/*/bin" : binDir}). ${INSTALL_HINT}`,
  );
}

/** uid/gid to run the server as: the `postgres` user when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const probe = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const gprobe = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (probe.status !== 0 || gprobe.status !== 0) {
    throw new Error(`running as root, but there is no "postgres" user to run the server as. ${INSTALL_HINT}`);
  }
  return { uid: Number(probe.stdout.trim()), gid: Number(gprobe.stdout.trim()) };
}

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

async function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = new Socket();
    sock.once("error", () => {
      sock.destroy();
      resolve(false);
    });
    sock.connect(port, HOST, () => {
      sock.destroy();
      resolve(true);
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function run(file: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 60_000, ...(user ?? {}) }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")} failed: ${stderr || err.message}`));
      else resolve();
    });
  });
}

interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
  stderr: string[];
}

async function killProc(proc: Proc | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill(signal);
  await proc.exited;
}

/** Runs one query on a short-lived connection. */
async function query(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on("error", () => {}); // a server killed mid-query: the query rejects, the event must not crash the process
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

let dbCounter = 0;

/**
 * Creates a fresh database on the server named by `adminUrl` (a `postgres://…/postgres` URL, e.g. the one the
 * globalSetup provides as `inject("postgres").url`) and returns its URL. Names are unique per process.
 */
export async function createDatabase(adminUrl: string, name?: string): Promise<string> {
  const db = name ?? `t_${process.pid}_${Date.now().toString(36)}_${dbCounter++}`;
  if (!/^[a-z_][a-z0-9_]*$/.test(db)) throw new Error(`invalid database name ${db}`);
  await query(adminUrl, `CREATE DATABASE ${db}`);
  const url = new URL(adminUrl);
  url.pathname = `/${db}`;
  return url.toString();
}

/**
 * Starts a PostgreSQL server: `initdb` (trust auth, UTF8, no fsync) in a temporary directory, then `postgres` on a
 * free loopback port with `fsync=off` (tests only): a committed transaction is in the WAL the kernel holds, so it
 * survives `kill9` + `restart` of the server process (as with a real server), not a power loss of the machine.
 * @example
 * const pg = await startPostgres();
 * const url = await pg.createDatabase();
 * await pg.stop();
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresHandle> {
  const bin = findPostgresBin(options.binDir);
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), "tollgate-pg-"));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  try {
    await run(
      join(bin, "initdb"),
      ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
      user,
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const port = await freePort();
  const args = [
    "-D",
    data,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    `listen_addresses=${HOST}`,
    "-c",
    "fsync=off",
    "-c",
    "full_page_writes=off",
    "-c",
    "max_connections=200",
    "-c",
    "shared_buffers=32MB",
  ];
  const spawnServer = (): Proc => {
    const child = spawn(join(bin, "postgres"), args, { stdio: ["ignore", "ignore", "pipe"], ...(user ?? {}) });
    const stderr: string[] = [];
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (s: string) => {
      stderr.push(s);
      if (stderr.length > 200) stderr.shift();
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    return { child, exited, stderr };
  };
  const url = `postgres://postgres@${HOST}:${port}/postgres`;
  const waitReady = async (proc: Proc) => {
    await waitFor(`postgres on port ${port}`, async () => {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
        throw new Error(`postgres exited: ${proc.stderr.join("").slice(-2000)}`);
      }
      if (!(await canConnect(port))) return false;
      await query(url, "SELECT 1");
      return true;
    });
  };
  let proc: Proc | undefined = spawnServer();
  let stopped = false;
  try {
    await waitReady(proc);
  } catch (err) {
    await killProc(proc, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    host: HOST,
    port,
    url,
    createDatabase: (name?: string) => createDatabase(url, name),
    async stop() {
      if (stopped) return;
      stopped = true;
      // SIGINT = "fast" shutdown: disconnects clients (a test may still hold a pool) instead of waiting for them.
      await killProc(proc, "SIGINT");
      rmSync(dir, { recursive: true, force: true });
    },
    async kill9() {
      await killProc(proc, "SIGKILL");
      proc = undefined;
    },
    async restart() {
      if (stopped) throw new Error("restart() after stop()");
      await killProc(proc, "SIGKILL");
      await waitFor(`port ${port} to be free`, () => isPortFree(port));
      // After a SIGKILL the old backends notice the postmaster's death and exit within moments; until then a new
      // postmaster refuses to start ("pre-existing shared memory block is still in use"): retry.
      await waitFor(
        `postgres to restart on port ${port}`,
        async () => {
          const next = spawnServer();
          try {
            await waitReady(next);
            proc = next;
            return true;
          } catch (err) {
            await killProc(next, "SIGKILL");
            throw err;
          }
        },
        30_000,
      );
    },
  };
}
