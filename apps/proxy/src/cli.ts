#!/usr/bin/env node
/**
 * `tollgate [--config config.yaml] [--port 4000] [--host 0.0.0.0]`
 * Environment: TOLLGATE_CONFIG, PORT, HOST, LITELLM_MASTER_KEY, REDIS_URL / REDIS_HOST / REDIS_PORT / REDIS_PASSWORD,
 * LOG_LEVEL (or LITELLM_LOG).
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ConfigError, loadConfigFile, type ProxyConfig } from "./config/load.js";
import { loadExtensions } from "./extensions.js";
import { createProxy, VERSION } from "./server.js";

const USAGE = `Usage: tollgate [--config config.yaml] [--port 4000] [--host 0.0.0.0]

Starts Tollgate, the OpenAI-compatible proxy with exact rate limits and USD budgets (LiteLLM config.yaml format).
Without --config (or TOLLGATE_CONFIG) it runs the bundled example on the offline mock provider.

Options:
  -c, --config <file>  config.yaml (LiteLLM format)            env TOLLGATE_CONFIG
  -p, --port <port>    port to listen on (0: any free port)    env PORT, default 4000
      --host <host>    address to listen on                    env HOST, default 0.0.0.0
  -h, --help           this help
  -v, --version        print the version`;

function bundledExample(): string {
  for (const rel of ["../config.example.yaml", "../../config.example.yaml"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error("the bundled config.example.yaml is missing from this installation");
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse();
  } catch (err) {
    process.stderr.write(`tollgate: ${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const file = args.config ?? (process.env.TOLLGATE_CONFIG || undefined);
  const example = file === undefined;
  const path = file ?? bundledExample();
  let config: ProxyConfig;
  try {
    config = loadConfigFile(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tollgate: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  let keyNote: string;
  if (config.masterKeySource === "config")
    keyNote = `from ${example ? "the bundled example" : path} (general_settings.master_key)`;
  else if (config.masterKeySource === "env") keyNote = "from LITELLM_MASTER_KEY";
  else if (example) {
    config.masterKey = `sk-${randomBytes(16).toString("base64url")}`;
    config.masterKeySource = "config";
    keyNote = "generated for this run (set LITELLM_MASTER_KEY to choose one)";
  } else
    keyNote =
      "none: the proxy is OPEN to anyone who can reach it (set general_settings.master_key or LITELLM_MASTER_KEY)";

  const portText = args.port ?? (process.env.PORT || "4000");
  const port = /^\d+$/.test(portText.trim()) ? Number(portText) : Number.NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    const from = args.port === undefined ? "PORT" : "--port";
    process.stderr.write(`tollgate: ${from} must be a port number (0-65535), got ${JSON.stringify(portText)}\n`);
    process.exit(2);
  }
  const host = args.host ?? (process.env.HOST || "0.0.0.0");

  const proxy = createProxy(config);
  for (const w of config.warnings) proxy.log.warn(`config: ${w}`);
  // The bundled example keeps its database in the working directory, not inside the installed package.
  const extensions = await loadExtensions(config, example ? { databaseDir: process.cwd() } : {});
  for (const ext of extensions) proxy.use(ext);
  let address: { port: number };
  try {
    address = await proxy.listen(port, host);
  } catch (err) {
    // listen() also starts the store and the extensions (the database): say which part failed.
    const code = (err as NodeJS.ErrnoException)?.code;
    const listening = code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL" || code === "ENOTFOUND";
    process.stderr.write(
      listening
        ? `tollgate: cannot listen on ${host}:${port}: ${(err as Error).message}${
            code === "EADDRINUSE" ? " (choose another port: --port 4001, or PORT=4001; pnpm start -- --port 4001)" : ""
          }\n`
        : `tollgate: cannot start: ${(err as Error)?.message ?? String(err)}\n`,
    );
    process.exit(1);
  }
  // Before the banner: whoever reads it may press Ctrl-C (or send SIGTERM) at once.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write("tollgate: stopping now\n");
      process.exit(1);
    }
    stopping = true;
    proxy.log.info({ signal }, "shutting down: finishing in-flight requests");
    proxy
      .close()
      .then(() => {
        proxy.log.info("stopped");
        process.exit(0);
      })
      .catch((err: unknown) => {
        proxy.log.error({ err }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  const shown = host === "0.0.0.0" || host === "::" ? "localhost" : host;
  const url = `http://${shown}:${address.port}`;
  const model = config.deployments.find((d) => d.mode !== "embedding")?.modelName ?? "MODEL";
  const auth = config.masterKey === null ? "" : ` \\\n  -H 'Authorization: Bearer ${config.masterKey}'`;
  process.stdout.write(
    [
      "",
      `Tollgate ${VERSION} listening on ${url}`,
      `  config:     ${example ? `bundled example (${path})` : path}`,
      `  store:      ${config.store.type}`,
      `  master key: ${config.masterKey === null ? "" : `${config.masterKey} `}${keyNote}`,
      `  admin UI:   ${url}/ui (sign in with the master key)`,
      ...extensions.flatMap((e) => e.describe?.() ?? []),
      `  models:     ${[...new Set(config.deployments.map((d) => d.modelName))].join(", ") || "(none)"}`,
      "",
      "Try it:",
      `curl ${url}/v1/chat/completions${auth} \\\n  -H 'Content-Type: application/json' \\\n  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}]}'`,
      "",
      "Ctrl-C stops it.",
      "",
    ].join("\n"),
  );
}

function parse() {
  // `pnpm start -- --port 5000` hands the script a leading `--`: skip it.
  const argv = process.argv.slice(2);
  if (argv[0] === "--") argv.shift();
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string", short: "c" },
      port: { type: "string", short: "p" },
      host: { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
    },
    allowPositionals: false,
  });
  return values;
}

main().catch((err: unknown) => {
  process.stderr.write(`tollgate: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
