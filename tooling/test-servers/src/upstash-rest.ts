/**
 * A small HTTP server that speaks Upstash's REST protocol and runs every command on a real redis-server.
 *
 * Test tooling only (never published). It lets the real `@upstash/redis` client talk to a local Redis:
 * - `POST /` with a JSON command array, e.g. `["EVALSHA", sha, 2, "k1", "k2", "a1"]` -> `{"result": ...}`
 * - `POST /pipeline` with an array of commands -> an array of `{"result": ...}` / `{"error": "..."}`
 * - `POST /multi-exec` with an array of commands, run as one MULTI/EXEC transaction
 * - `Authorization: Bearer <token>`: a wrong or missing token answers 401 `{"error": ...}`
 * - `Upstash-Encoding: base64`: every string in the result is base64 (except the status `"OK"`, which the client
 *   special-cases), integers stay JSON numbers, nested arrays are encoded element by element
 * - Redis errors answer HTTP 400 `{"error": "<redis message>"}` (e.g. `NOSCRIPT ...`), as Upstash does
 *
 * Fault injection: `pause()` makes the server stop answering (requests are received and counted but left hanging);
 * `resume()` answers again. Requests received while paused are dropped (their sockets are destroyed on resume)
 * and never reach Redis, like requests lost in a network partition.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Redis } from "ioredis";

export interface UpstashRestServerOptions {
  /** Redis to execute commands on, e.g. `redis://127.0.0.1:6390`. */
  redisUrl: string;
  /** Bearer token clients must send. @default a random token */
  token?: string;
  /** Interface to listen on. @default "127.0.0.1" */
  host?: string;
}

/** One HTTP request as the server saw it (for assertions on what a client sent). */
export interface UpstashRestRequestRecord {
  /** `"/"`, `"/pipeline"` or `"/multi-exec"` (or whatever path was requested). */
  path: string;
  /** Upper-cased command names in the body, in order (empty when the body was not a command). */
  commands: string[];
  /** For a `POST /` of EVAL or EVALSHA, the keys it names (to tell apart the requests of different stores). */
  keys?: string[];
  /** The request asked for base64 responses (`Upstash-Encoding: base64`). */
  base64: boolean;
}

/** Rewrites a response body before it is sent (fault injection: malformed or unexpected replies). */
export type UpstashRestTamper = (body: unknown, request: UpstashRestRequestRecord) => unknown;

export interface UpstashRestServer {
  /** Base URL to give to `new Redis({ url, token })`, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The token the server accepts. */
  readonly token: string;
  /** HTTP requests received so far, whatever their outcome (including unauthorized and paused ones). */
  readonly requests: number;
  /** Requests held by `pause()` whose client is still waiting (its connection is open). */
  readonly pending: number;
  /** Every request received since start or the last {@link UpstashRestServer.resetLog}. */
  readonly log: readonly UpstashRestRequestRecord[];
  /** Clears {@link UpstashRestServer.log} and sets {@link UpstashRestServer.requests} back to 0. */
  resetLog(): void;
  /** Stop answering: new requests are counted and left hanging. */
  pause(): void;
  /** Answer again; requests held while paused are dropped (their connections are destroyed). */
  resume(): void;
  /**
   * Fault injection: every successful (200) response body goes through `fn` before it is sent, until
   * `tamper(undefined)` is called.
   */
  tamper(fn: UpstashRestTamper | undefined): void;
  /** Stop the HTTP server, drop every connection and disconnect from Redis. Idempotent. */
  close(): Promise<void>;
}

type Reply = null | number | string | Buffer | Error | Reply[];
type Json = null | number | string | Json[];

/** Upper-cased name of a command array's first element, or "" when it is not a command. */
function commandName(cmd: unknown): string {
  return Array.isArray(cmd) && typeof cmd[0] === "string" ? cmd[0].toUpperCase() : "";
}

/** Turns a JSON command array into ioredis arguments (numbers and booleans become strings, as on the wire). */
function toArgs(cmd: unknown): [string, ...string[]] {
  if (!Array.isArray(cmd) || cmd.length === 0 || typeof cmd[0] !== "string") {
    throw new Error("ERR failed to parse command: expected a non-empty JSON array starting with a command name");
  }
  return cmd.map((part, i) => {
    if (typeof part === "string") return part;
    if (typeof part === "number" || typeof part === "boolean") return String(part);
    throw new Error(`ERR failed to parse command: argument ${i} is ${part === null ? "null" : typeof part}`);
  }) as [string, ...string[]];
}

/** Converts a Redis reply to JSON, base64-encoding strings when asked. */
function encodeReply(reply: Reply, base64: boolean): Json {
  if (reply === null || reply === undefined) return null;
  if (typeof reply === "number") return reply;
  if (Array.isArray(reply)) return reply.map((r) => encodeReply(r, base64));
  if (reply instanceof Error) return reply.message;
  const buf = typeof reply === "string" ? Buffer.from(reply) : reply;
  if (!base64) return buf.toString("utf8");
  // The client passes a bare "OK" through untouched; everything else is decoded from base64.
  if (buf.length === 2 && buf[0] === 0x4f && buf[1] === 0x4b) return "OK";
  return buf.toString("base64");
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** Starts the server on a free loopback port. */
export async function startUpstashRestServer(options: UpstashRestServerOptions): Promise<UpstashRestServer> {
  const token = options.token ?? `tok_${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  const host = options.host ?? "127.0.0.1";
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  await redis.connect();

  let requests = 0;
  let log: UpstashRestRequestRecord[] = [];
  let paused = false;
  let tamper: UpstashRestTamper | undefined;
  const held = new Set<IncomingMessage>();
  const sockets = new Set<Socket>();

  async function runOne(cmd: unknown, base64: boolean): Promise<Json> {
    const [name, ...args] = toArgs(cmd);
    const reply = (await redis.callBuffer(name, ...args)) as Reply;
    return encodeReply(reply, base64);
  }

  async function runBatch(cmds: unknown[], base64: boolean, transaction: boolean): Promise<Json[]> {
    const parsed = cmds.map(toArgs);
    const batch = transaction ? redis.multi() : redis.pipeline();
    for (const [name, ...args] of parsed) batch.callBuffer(name, ...args);
    const results = await batch.exec();
    if (results === null) throw new Error("EXECABORT Transaction discarded");
    return results.map(([err, reply]) =>
      err ? { error: errorMessage(err) } : { result: encodeReply(reply as Reply, base64) },
    ) as unknown as Json[];
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const body = await readBody(req);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const record: UpstashRestRequestRecord = {
      path,
      commands: path === "/" ? [commandName(parsed)] : Array.isArray(parsed) ? parsed.map(commandName) : [],
      base64,
    };
    const ok = (body: unknown) => send(res, 200, tamper ? tamper(body, record) : body);
    if (path === "/" && (record.commands[0] === "EVALSHA" || record.commands[0] === "EVAL")) {
      const cmd = parsed as unknown[];
      const n = Number(cmd[2]);
      if (Number.isSafeInteger(n) && n >= 0) record.keys = cmd.slice(3, 3 + n).map(String);
    }
    log.push(record);

    if (paused) {
      held.add(req);
      return; // never answered; dropped on resume
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      send(res, 401, { error: "WRONGPASS invalid or missing auth token" });
      return;
    }
    if (req.method !== "POST") {
      send(res, 405, { error: "ERR only POST is supported by this test server" });
      return;
    }
    try {
      if (parsed === undefined) throw new Error("ERR failed to parse request body as JSON");
      if (path === "/") {
        ok({ result: await runOne(parsed, base64) });
      } else if (path === "/pipeline" || path === "/multi-exec") {
        if (!Array.isArray(parsed) || parsed.length === 0) {
          throw new Error("ERR a pipeline needs a non-empty JSON array of commands");
        }
        ok(await runBatch(parsed, base64, path === "/multi-exec"));
      } else {
        send(res, 404, { error: `ERR unknown path ${path}` });
      }
    } catch (err) {
      send(res, 400, { error: errorMessage(err) });
    }
  }

  const server = createServer((req, res) => {
    requests++;
    handle(req, res).catch((err) => {
      if (!res.headersSent) send(res, 500, { error: `ERR test server: ${errorMessage(err)}` });
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    token,
    get requests() {
      return requests;
    },
    get log() {
      return log;
    },
    get pending() {
      let n = 0;
      for (const req of held) if (!req.socket.destroyed) n++;
      return n;
    },
    resetLog() {
      requests = 0;
      log = [];
    },
    tamper(fn) {
      tamper = fn;
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      for (const req of held) req.socket.destroy();
      held.clear();
    },
    close() {
      closed ??= (async () => {
        paused = false;
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        redis.disconnect();
      })();
      return closed;
    },
  };
}
