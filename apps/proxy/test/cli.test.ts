/**
 * The `tollgate` command as a real process, as apps/proxy/README.md documents it: `--config`/`--port`/`--host` (also
 * after the `--` that `pnpm start -- …` passes), `TOLLGATE_CONFIG`, `PORT`, `HOST`, `LITELLM_MASTER_KEY`,
 * `DATABASE_URL`, LiteLLM's `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD` and `REDIS_URL` (against a redis-server that
 * requires a password), and config errors: exit code 1, the key named, no stack trace.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PROXY_CLI, runProxyCli, startRedisServer } from "@tollgate/test-servers";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { eventually } from "./helpers.js";

/** The variables the CLI reads, unset, so that the machine's own never leak into a test. */
const CLEAN: Record<string, undefined> = {
  TOLLGATE_CONFIG: undefined,
  PORT: undefined,
  HOST: undefined,
  LITELLM_MASTER_KEY: undefined,
  DATABASE_URL: undefined,
  REDIS_URL: undefined,
  REDIS_HOST: undefined,
  REDIS_PORT: undefined,
  REDIS_PASSWORD: undefined,
  UPSTASH_REDIS_REST_URL: undefined,
  UPSTASH_REDIS_REST_TOKEN: undefined,
};

function environment(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn" };
  for (const [k, v] of Object.entries({ ...CLEAN, ...extra })) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-cli-"));
  const p = join(dir, "config.yaml");
  writeFileSync(p, text);
  return p;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Cli {
  proc: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | string>;
  /** SIGINT (Ctrl-C) and the exit code. */
  interrupt(): Promise<number | string>;
}

/** Starts the CLI and waits for its banner. */
async function startCli(args: string[], env: Record<string, string | undefined>): Promise<Cli> {
  const proc = spawn(process.execPath, [PROXY_CLI, ...args], { env: environment(env), stdio: "pipe" });
  let out = "";
  let err = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on("exit", (c, s) => resolve(c ?? s ?? "unknown")));
  const cli: Cli = {
    proc,
    out: () => out,
    err: () => err,
    exited,
    async interrupt() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGINT");
      return exited;
    },
  };
  try {
    await Promise.race([
      eventually(() => expect(out).toContain("Ctrl-C stops it."), 30_000),
      exited.then((code) => {
        throw new Error(`the CLI exited (${code}) before its banner:\n${out}\n${err}`);
      }),
    ]);
  } catch (e) {
    proc.kill("SIGKILL");
    throw e;
  }
  return cli;
}

/** The banner's curl command, run as printed: URL, Authorization header and body. */
async function printedCurl(out: string): Promise<{ status: number; json: any }> {
  const url = /^curl (\S+)/m.exec(out)![1]!;
  const key = /Authorization: Bearer (\S+)'/.exec(out)?.[1];
  const body = /-d '(.+)'/.exec(out)![1]!;
  const res = await fetch(url, {
    method: "POST",
    headers: { ...(key === undefined ? {} : { Authorization: `Bearer ${key}` }), "Content-Type": "application/json" },
    body,
  });
  return { status: res.status, json: await res.json() };
}

const MOCK = `
model_list:
  - model_name: m
    litellm_params: { model: mock/m, mock_response: "mocked reply", rpm: 1000 }
`;

describe("tollgate: options and environment", () => {
  it("takes --config, --port and --host after a leading -- (pnpm start -- …), and Ctrl-C exits 0 without a stack", async () => {
    const port = await freePort();
    const cli = await startCli(["--", "--config", file(MOCK), "--port", String(port), "--host", "127.0.0.1"], {
      LITELLM_MASTER_KEY: "sk-from-env",
      DATABASE_URL: "none",
    });
    try {
      expect(cli.out()).toContain(`listening on http://127.0.0.1:${port}`);
      expect(cli.out()).toContain("master key: sk-from-env from LITELLM_MASTER_KEY");
      expect(cli.out()).toContain(`admin UI:   http://127.0.0.1:${port}/ui`);
      expect(cli.out()).not.toContain("database:");
      const r = await printedCurl(cli.out());
      expect(r.status).toBe(200);
      expect(r.json.choices[0].message.content).toBe("mocked reply");
      const wrong = await fetch(`http://127.0.0.1:${port}/v1/models`, {
        headers: { authorization: "Bearer sk-other" },
      });
      expect(wrong.status).toBe(401);
      expect(await cli.interrupt()).toBe(0);
      expect(cli.err()).toBe("");
      expect(cli.out()).not.toMatch(/\n\s+at /);
    } finally {
      cli.proc.kill("SIGKILL");
    }
  }, 60_000);

  it("takes TOLLGATE_CONFIG, PORT and HOST from the environment; without a master key it says the proxy is open", async () => {
    const port = await freePort();
    const cli = await startCli([], { TOLLGATE_CONFIG: file(MOCK), PORT: String(port), HOST: "127.0.0.1" });
    try {
      expect(cli.out()).toContain(`listening on http://127.0.0.1:${port}`);
      expect(cli.out()).toMatch(/master key: none: the proxy is OPEN/);
      expect(cli.out()).toMatch(/database: {3}sqlite \S+tollgate\.db/);
      const r = await printedCurl(cli.out());
      expect(r.status).toBe(200);
      expect(await cli.interrupt()).toBe(0);
    } finally {
      cli.proc.kill("SIGKILL");
    }
  }, 60_000);

  it("REDIS_HOST, REDIS_PORT and REDIS_PASSWORD, or REDIS_URL, select the Redis store (a server that requires the password)", async () => {
    const redis = await startRedisServer({ password: "s3cret pass" });
    const direct = new Redis(redis.url);
    try {
      for (const [args, env] of [
        [
          ["--config", file(MOCK)],
          { REDIS_HOST: redis.host, REDIS_PORT: String(redis.port), REDIS_PASSWORD: "s3cret pass" },
        ],
        [["--config", file(MOCK)], { REDIS_URL: redis.url }],
        [[], { REDIS_URL: redis.url }], // the bundled example (pnpm start) too
      ] as const) {
        await direct.flushall();
        const cli = await startCli([...args, "--port", "0", "--host", "127.0.0.1"], {
          ...env,
          LITELLM_MASTER_KEY: "sk-m",
          DATABASE_URL: "none",
        });
        try {
          expect(cli.out()).toContain("store:      redis");
          const r = await printedCurl(cli.out());
          expect(r.status).toBe(200);
          // the request was counted in this Redis (the proxy's default prefix)
          expect((await direct.keys("tollgate:*")).length).toBeGreaterThan(0);
          expect(await cli.interrupt()).toBe(0);
          expect(cli.err()).toBe("");
        } finally {
          cli.proc.kill("SIGKILL");
        }
      }
      // a wrong password: the store is unreachable, and under the default closed policy the request answers 503
      const cli = await startCli(["--config", file(MOCK), "--port", "0", "--host", "127.0.0.1"], {
        REDIS_HOST: redis.host,
        REDIS_PORT: String(redis.port),
        REDIS_PASSWORD: "wrong",
        LITELLM_MASTER_KEY: "sk-m",
        DATABASE_URL: "none",
      });
      try {
        const r = await printedCurl(cli.out());
        expect(r.status).toBe(503);
        expect(r.json.error.type).toBe("service_unavailable");
      } finally {
        await cli.interrupt();
        cli.proc.kill("SIGKILL");
      }
    } finally {
      direct.disconnect();
      await redis.stop();
    }
  }, 90_000);
});

describe("tollgate: bad configs and arguments", () => {
  const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at /);

  it("a misspelt key, an unknown store key, a wrong type and a wrong store type: exit 1, each key named", async () => {
    const bad = file(`
model_list:
  - model_name: m
    litellm_params: { model: mock/m, rpn: 5, timeout: soon }
general_settings:
  master_kye: sk-1
  store: { type: memory, max_entires: 10 }
`);
    const r = await runProxyCli(["--config", bad, "--port", "0"], CLEAN);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("model_list[0].litellm_params.rpn: unknown key (did you mean rpm?)");
    expect(r.stderr).toContain("general_settings.master_kye: unknown key (did you mean master_key?)");
    expect(r.stderr).toContain("general_settings.store.max_entires: unknown key (did you mean max_entries?)");
    expect(r.stderr).toContain(
      'model_list[0].litellm_params.timeout: expected a positive number of seconds, got "soon"',
    );
    noStack(r.stderr);
    const store = await runProxyCli(["--config", file("general_settings: { store: redsi }\n"), "--port", "0"], CLEAN);
    expect(store.code).toBe(1);
    expect(store.stderr).toContain(
      "general_settings.store: expected a store type (memory, redis, redis_cluster, upstash)",
    );
  }, 60_000);

  it("LiteLLM settings Tollgate does not support are one warning, and the proxy starts", async () => {
    const cli = await startCli(
      [
        "--config",
        file(
          `${MOCK}litellm_settings: { drop_params: true }\ngeneral_settings: { alerting: [slack], database_url: none }\n`,
        ),
        "--port",
        "0",
      ],
      {},
    );
    try {
      expect(cli.out()).toContain(
        "ignoring 2 LiteLLM setting(s) Tollgate does not support yet: litellm_settings.drop_params, general_settings.alerting",
      );
      expect(await cli.interrupt()).toBe(0);
    } finally {
      cli.proc.kill("SIGKILL");
    }
  }, 60_000);

  it("a missing file, a missing TOLLGATE_CONFIG file, an unreachable database, a port in use, a bad PORT: clear errors, no stack", async () => {
    const missing = await runProxyCli(["--config", "/nonexistent/tollgate.yaml"], CLEAN);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("/nonexistent/tollgate.yaml is invalid");
    expect(missing.stderr).toContain("cannot read the file: ENOENT");
    noStack(missing.stderr);
    const fromEnv = await runProxyCli([], { ...CLEAN, TOLLGATE_CONFIG: "/nonexistent/env.yaml" });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stderr).toContain("/nonexistent/env.yaml is invalid");
    const dead = await freePort();
    const db = await runProxyCli(["--config", file(MOCK), "--port", "0"], {
      ...CLEAN,
      DATABASE_URL: `postgres://tollgate:hunter2@127.0.0.1:${dead}/x`,
    });
    expect(db.code).toBe(1);
    expect(db.stderr).toContain(
      `tollgate: cannot start: cannot open the database postgres://tollgate:****@127.0.0.1:${dead}/x`,
    );
    expect(db.stderr).not.toContain("hunter2");
    noStack(db.stderr);
    const taken = createServer();
    const busy = await new Promise<number>((resolve) =>
      taken.listen(0, "127.0.0.1", () => resolve((taken.address() as { port: number }).port)),
    );
    try {
      const inUse = await runProxyCli(["--config", file(MOCK), "--port", String(busy), "--host", "127.0.0.1"], {
        ...CLEAN,
        DATABASE_URL: "none",
      });
      expect(inUse.code).toBe(1);
      expect(inUse.stderr).toContain(`tollgate: cannot listen on 127.0.0.1:${busy}: listen EADDRINUSE`);
      expect(inUse.stderr).toContain("choose another port: --port 4001");
      noStack(inUse.stderr);
    } finally {
      taken.close();
    }
    const port = await runProxyCli(["--config", file(MOCK)], { ...CLEAN, PORT: "http" });
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('tollgate: PORT must be a port number (0-65535), got "http"');
  }, 60_000);
});
