/**
 * Starts the Tollgate proxy as a real child process (`node apps/proxy/dist/cli.js --config <file> --port 0`) and
 * reads the port it reports. Build the proxy first (`pnpm test` runs `turbo run build`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const PROXY_CLI = fileURLToPath(new URL("../../../apps/proxy/dist/cli.js", import.meta.url));

export interface ProxyProcess {
  url: string;
  port: number;
  proc: ChildProcess;
  /** Everything the process wrote so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  /** Sends a signal (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export interface ProxyProcessOptions {
  /** config.yaml text. */
  config: string;
  /** Extra environment (merged over the current one). */
  env?: Record<string, string | undefined>;
  /** Extra CLI arguments. */
  args?: string[];
  /** How long to wait for the listening line. @default 20000 */
  startTimeoutMs?: number;
}

/** Runs the CLI and waits until it exits (for config errors): code, stdout, stderr. */
export async function runProxyCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 20_000,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  assertBuilt();
  const proc = spawn(process.execPath, [PROXY_CLI, ...args], { env: { ...process.env, ...env }, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | string>((resolve) => {
    const t = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    proc.on("exit", (c, s) => {
      clearTimeout(t);
      resolve(c ?? s ?? "unknown");
    });
  });
  return { code, stdout, stderr };
}

function assertBuilt(): void {
  if (!existsSync(PROXY_CLI)) {
    throw new Error(`${PROXY_CLI} is missing: build the proxy first (pnpm build, or pnpm test which builds)`);
  }
}

/** Starts the proxy with a config on a free port and waits until it listens. */
export async function startProxyProcess(options: ProxyProcessOptions): Promise<ProxyProcess> {
  assertBuilt();
  const dir = mkdtempSync(join(tmpdir(), "tollgate-proxy-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, options.config);
  const proc = spawn(
    process.execPath,
    [PROXY_CLI, "--config", file, "--port", "0", "--host", "127.0.0.1", ...(options.args ?? [])],
    { env: { ...process.env, LOG_LEVEL: "warn", ...options.env }, stdio: "pipe" },
  );
  let out = "";
  let err = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | string>((resolve) => {
    proc.on("exit", (code, signal) => {
      rmSync(dir, { recursive: true, force: true });
      resolve(code ?? signal ?? "unknown");
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`the proxy did not start within ${options.startTimeoutMs ?? 20_000} ms:\n${out}\n${err}`)),
      options.startTimeoutMs ?? 20_000,
    );
    const check = () => {
      const m = /listening on http:\/\/[^:\s]+:(\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    };
    proc.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`the proxy exited (${code}) before listening:\n${out}\n${err}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
