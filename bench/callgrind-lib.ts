/**
 * A redis-server under `valgrind --tool=callgrind`, instrumentation off until asked: `measure(fn)` counts the
 * instructions Redis executes while `fn` runs (deterministic, whatever the machine's load). Used by
 * bench/callgrind.ts.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface CallgrindRedis {
  client: Redis;
  /** Instructions Redis executed while `fn` ran. */
  measure(fn: () => Promise<void>): Promise<number>;
  stop(): Promise<void>;
}

export async function startCallgrindRedis(): Promise<CallgrindRedis> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-callgrind-"));
  const port = await freePort();
  const proc: ChildProcess = spawn(
    "valgrind",
    [
      "--tool=callgrind",
      "--instr-atstart=no",
      `--callgrind-out-file=${join(dir, "cg.out")}`,
      "redis-server",
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      // Time-driven work (the cron, the active expiry of keys with a TTL) would scale with valgrind's slowness and
      // the machine's load: cron at 1 Hz, and active expiry off below (keys still expire when accessed).
      "--hz",
      "1",
      "--enable-debug-command",
      "local",
    ],
    { stdio: "ignore" },
  );
  for (let t = 0; ; t++) {
    // redis-server under valgrind takes a few seconds to listen.
    const up = spawnSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" }).stdout?.trim() === "PONG";
    if (up) break;
    if (t > 150) {
      proc.kill("SIGKILL");
      throw new Error("redis-server under valgrind did not start (is valgrind installed?)");
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const client = new Redis({ port, host: "127.0.0.1" });
  await client.call("DEBUG", "SET-ACTIVE-EXPIRE", "0");
  const control = (...args: string[]) =>
    execFileSync("callgrind_control", [...args, String(proc.pid)], { stdio: "ignore" });
  const seen = new Set(readdirSync(dir));
  const fresh = () => readdirSync(dir).filter((f) => f.startsWith("cg.out") && !seen.has(f));

  async function measure(fn: () => Promise<void>): Promise<number> {
    control("-i", "on");
    await fn();
    control("-i", "off");
    control("-d");
    // The dump is written by the valgrind process after the command: wait for the file and its totals line.
    for (let t = 0; t < 200; t++) {
      const files = fresh();
      if (files.length === 1) {
        const text = readFileSync(join(dir, files[0]!), "utf8");
        const m = /^totals: (\d+)/m.exec(text);
        if (m) {
          seen.add(files[0]!);
          return Number(m[1]);
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("no callgrind dump appeared");
  }

  async function stop(): Promise<void> {
    client.disconnect();
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
  return { client, measure, stop };
}
