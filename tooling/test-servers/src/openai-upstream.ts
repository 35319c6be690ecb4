/**
 * An OpenAI-compatible upstream for tests and benchmarks (node:http): `/v1/chat/completions`, `/v1/completions`,
 * `/v1/embeddings`, `/v1/models` (also without `/v1`), JSON and SSE streaming with `stream_options.include_usage`,
 * deterministic replies and usage, and injectable faults.
 *
 * Faults come from the server's `defaults`, or per request from a `x_test` object in the request body (the proxy
 * forwards unknown body fields unchanged, so a test can steer each call), e.g.
 * `{"x_test": {"status": 500}}`, `{"x_test": {"hang": true}}`, `{"x_test": {"dropAfterChunks": 3}}`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Behaviour of one request. Every field is optional. */
export interface UpstreamBehaviour {
  /** Answer this error status with OpenAI's error body. */
  status?: number;
  /** Error message for `status`. */
  message?: string;
  /** Wait before the response headers (ms). */
  delayMs?: number;
  /** Wait between stream chunks (ms). */
  chunkDelayMs?: number;
  /** Never answer (until the client goes away). */
  hang?: boolean;
  /** Streams: after this many content chunks, send headers' worth of chunks then destroy the socket. */
  dropAfterChunks?: number;
  /** Streams: after this many content chunks, send a `data: {"error": …}` frame and end. */
  errorFrameAfterChunks?: number;
  /** Produce this many completion tokens (one per stream chunk) regardless of `max_tokens`. */
  tokens?: number;
  /** Produce more tokens than `max_tokens` asks (streams past the cap). */
  ignoreMaxTokens?: boolean;
  /** Never send usage, even when `stream_options.include_usage` is set. */
  noUsage?: boolean;
  /** Report this many prompt tokens (default: characters / 4, at least 1). */
  promptTokens?: number;
  /** Report these cached prompt tokens in `prompt_tokens_details`. */
  cachedTokens?: number;
  /** Answer a 200 whose body is not JSON. */
  invalidJson?: boolean;
}

export interface OpenAIUpstreamOptions {
  /** Port to listen on. @default 0 (a free port) */
  port?: number;
  /** Behaviour of every request unless its `x_test` says otherwise. */
  defaults?: UpstreamBehaviour;
  /** Reply text, split into word tokens. @default "Hello from the test upstream. It answers deterministically." */
  reply?: string;
  /** A fixed non-streaming chat completion body (benchmarks: no JSON work per request). */
  fixedResponse?: string;
}

export interface OpenAIUpstream {
  url: string;
  /** `<url>/v1` (an api_base). */
  apiBase: string;
  port: number;
  /** Requests received per path. */
  readonly stats: {
    requests: number;
    inflight: number;
    maxInflight: number;
    /** Requests whose client went away before the response ended. */
    aborted: number;
    completed: number;
  };
  /** The last request bodies (up to 1000). */
  readonly bodies: Array<Record<string, unknown>>;
  /** Request headers of the last request. */
  lastHeaders: Record<string, string | string[] | undefined>;
  defaults: UpstreamBehaviour;
  reset(): void;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

const DEFAULT_REPLY = "Hello from the test upstream. It answers deterministically.";

function words(text: string): string[] {
  return text.match(/\S+\s*/g) ?? [];
}

function promptChars(body: Json): number {
  let n = 0;
  const add = (v: unknown, depth: number) => {
    if (typeof v === "string") n += v.length;
    else if (depth < 4 && Array.isArray(v)) for (const x of v) add(x, depth + 1);
    else if (depth < 4 && v !== null && typeof v === "object") {
      const o = v as Json;
      if (typeof o.text === "string") n += o.text.length;
      else add(o.content, depth + 1);
    }
  };
  add(body.messages ?? body.prompt ?? body.input, 0);
  return n;
}

/** Starts the upstream on a free loopback port. */
export async function startOpenAIUpstream(options: OpenAIUpstreamOptions = {}): Promise<OpenAIUpstream> {
  const reply = words(options.reply ?? DEFAULT_REPLY);
  const fixed = options.fixedResponse === undefined ? undefined : Buffer.from(options.fixedResponse);
  const stats = { requests: 0, inflight: 0, maxInflight: 0, aborted: 0, completed: 0 };
  const bodies: Json[] = [];
  let n = 0;

  const handle = (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    const url = (req.url ?? "/").split("?")[0]!.replace(/^\/v1/, "");
    if (req.method === "GET" && url === "/models") {
      return json(res, 200, {
        object: "list",
        data: [{ id: "test-model", object: "model", created: 0, owned_by: "test" }],
      });
    }
    if (fixed !== undefined && url === "/chat/completions" && !raw.includes('"stream":true')) {
      res.writeHead(200, { "content-type": "application/json", "content-length": fixed.length });
      res.end(fixed);
      return;
    }
    let body: Json;
    try {
      body = JSON.parse(raw.toString("utf8") || "{}") as Json;
    } catch {
      return json(res, 400, {
        error: { message: "invalid JSON", type: "invalid_request_error", param: null, code: null },
      });
    }
    if (bodies.length >= 1000) bodies.shift();
    bodies.push(body);
    const b: UpstreamBehaviour = { ...upstream.defaults, ...((body.x_test as UpstreamBehaviour | undefined) ?? {}) };
    const id = `chatcmpl-test-${++n}`;
    const go = () => respond(req, res, url, body, b, id);
    if (b.hang) return;
    if (b.delayMs) setTimeout(go, b.delayMs);
    else go();
  };

  const respond = (
    _req: IncomingMessage,
    res: ServerResponse,
    url: string,
    body: Json,
    b: UpstreamBehaviour,
    id: string,
  ) => {
    if (res.destroyed) return;
    if (b.status !== undefined && b.status >= 400) {
      return json(res, b.status, {
        error: {
          message: b.message ?? `test upstream error ${b.status}`,
          type: "upstream_error",
          param: null,
          code: String(b.status),
        },
      });
    }
    if (b.invalidJson) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end("this is not json");
      return;
    }
    const model = typeof body.model === "string" ? body.model : "test-model";
    const prompt = b.promptTokens ?? Math.max(1, Math.floor(promptChars(body) / 4));
    const usageOf = (completion: number) => ({
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      ...(b.cachedTokens !== undefined ? { prompt_tokens_details: { cached_tokens: b.cachedTokens } } : {}),
    });
    if (url === "/embeddings") {
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      return json(res, 200, {
        object: "list",
        data: inputs.map((_, i) => ({ object: "embedding", index: i, embedding: [0.25, 0.5, 0.75] })),
        model,
        usage: { prompt_tokens: prompt, total_tokens: prompt },
      });
    }
    const chat = url === "/chat/completions";
    if (!chat && url !== "/completions") {
      return json(res, 404, { error: { message: `no route ${url}`, type: "not_found", param: null, code: "404" } });
    }
    let tokens: string[] = reply;
    if (b.tokens !== undefined) tokens = Array.from({ length: b.tokens }, (_, i) => `t${i} `);
    const capRaw = body.max_tokens ?? body.max_completion_tokens;
    const cap = typeof capRaw === "number" && !b.ignoreMaxTokens ? capRaw : Number.POSITIVE_INFINITY;
    const finish = tokens.length > cap ? "length" : "stop";
    if (tokens.length > cap) tokens = tokens.slice(0, cap);
    const created = Math.floor(Date.now() / 1000);
    if (body.stream !== true) {
      const text = tokens.join("");
      return json(res, 200, {
        id,
        object: chat ? "chat.completion" : "text_completion",
        created,
        model,
        choices: [
          chat
            ? { index: 0, message: { role: "assistant", content: text }, finish_reason: finish }
            : { index: 0, text, logprobs: null, finish_reason: finish },
        ],
        usage: b.noUsage ? undefined : usageOf(tokens.length),
      });
    }
    const includeUsage = (body.stream_options as Json | undefined)?.include_usage === true && !b.noUsage;
    const frame = (choices: unknown[], usage?: unknown) =>
      `data: ${JSON.stringify({
        id,
        object: chat ? "chat.completion.chunk" : "text_completion",
        created,
        model,
        choices,
        ...(includeUsage ? { usage: usage ?? null } : {}),
      })}\n\n`;
    const frames: Array<string | "DROP" | "ERROR"> = [];
    if (chat) frames.push(frame([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]));
    tokens.forEach((t, i) => {
      if (b.dropAfterChunks === i) frames.push("DROP");
      if (b.errorFrameAfterChunks === i) frames.push("ERROR");
      frames.push(
        frame([
          chat ? { index: 0, delta: { content: t }, finish_reason: null } : { index: 0, text: t, finish_reason: null },
        ]),
      );
    });
    frames.push(
      frame([chat ? { index: 0, delta: {}, finish_reason: finish } : { index: 0, text: "", finish_reason: finish }]),
    );
    if (includeUsage) frames.push(frame([], usageOf(tokens.length)));
    frames.push("data: [DONE]\n\n");
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    let i = 0;
    const next = () => {
      while (i < frames.length) {
        if (res.destroyed) return;
        const f = frames[i++]!;
        if (f === "DROP") {
          // let the chunks written so far reach the client, then break the connection
          setTimeout(() => res.socket?.destroy(), 50);
          return;
        }
        if (f === "ERROR") {
          res.end(
            `data: ${JSON.stringify({ error: { message: "test upstream failed mid-stream", type: "upstream_error", param: null, code: "500" } })}\n\n`,
          );
          return;
        }
        res.write(f);
        if (b.chunkDelayMs && i < frames.length) {
          setTimeout(next, b.chunkDelayMs);
          return;
        }
      }
      res.end();
    };
    next();
  };

  const server: Server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    stats.requests++;
    stats.inflight++;
    if (stats.inflight > stats.maxInflight) stats.maxInflight = stats.inflight;
    upstream.lastHeaders = req.headers;
    let finished = false;
    res.on("finish", () => {
      finished = true;
      stats.completed++;
    });
    res.on("close", () => {
      stats.inflight--;
      if (!finished) stats.aborted++;
    });
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const upstream: OpenAIUpstream = {
    url,
    apiBase: `${url}/v1`,
    port,
    stats,
    bodies,
    lastHeaders: {},
    defaults: { ...options.defaults },
    reset() {
      stats.requests = 0;
      stats.maxInflight = stats.inflight;
      stats.aborted = 0;
      stats.completed = 0;
      bodies.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return upstream;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
