/**
 * The built-in `mock` provider (`model: mock/<name>`): answers in-process through the same dispatch-handler
 * interface as the upstream pools, so every request-path behaviour (usage, streaming, errors, disconnects) runs
 * without a network. Deterministic: the reply is `mock_response` split into word tokens, one token per stream
 * chunk; usage is prompt = `mock_prompt_tokens` (else the prompt's characters / 4, at least 1) and completion = the
 * tokens sent; `max_tokens` cuts the reply (`finish_reason: "length"`) unless `mock_ignore_max_tokens`.
 * Faults: `mock_error_rate` (every 1/rate-th request answers `mock_error_status`), `mock_error_after_chunks` (the
 * stream breaks after that many content chunks), `mock_latency_ms` (before the response) and
 * `mock_chunk_delay_ms` (between chunks).
 */
import type Dispatcher from "undici/types/dispatcher.js";
import type { MockSettings } from "./config/load.js";
import type { Handler } from "./upstream.js";

type Json = Record<string, unknown>;

const MOCK_SETTINGS = Symbol("tollgate.mock");

/** Options carried to the mock with each dispatch (the deployment's settings). */
export interface MockDispatchOptions extends Dispatcher.DispatchOptions {
  [MOCK_SETTINGS]?: MockSettings;
}

export function withMock(opts: Dispatcher.DispatchOptions, settings: MockSettings): Dispatcher.DispatchOptions {
  (opts as MockDispatchOptions)[MOCK_SETTINGS] = settings;
  return opts;
}

const tokenCache = new Map<string, string[]>();
function tokensOf(text: string): string[] {
  let t = tokenCache.get(text);
  if (t === undefined) {
    t = text.match(/\S+\s*/g) ?? [];
    if (tokenCache.size < 1000) tokenCache.set(text, t);
  }
  return t;
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

class MockController implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  timer: NodeJS.Timeout | undefined;
  done = false;

  constructor(
    private readonly owner: MockDispatcher,
    readonly handler: Handler,
  ) {}

  abort(reason: Error): void {
    if (this.aborted || this.done) return;
    this.aborted = true;
    this.reason = reason;
    this.stop();
    this.handler.onResponseError?.(this, reason);
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  stop(): void {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.owner.live.delete(this);
  }
}

export class MockDispatcher {
  readonly live = new Set<MockController>();
  private count = 0;

  dispatch(opts: Dispatcher.DispatchOptions, handler: Handler): boolean {
    const s = (opts as MockDispatchOptions)[MOCK_SETTINGS];
    const c = new MockController(this, handler);
    this.live.add(c);
    handler.onRequestStart?.(c, {});
    if (c.aborted) return true;
    const n = ++this.count;
    const run = () => {
      c.timer = undefined;
      if (c.aborted) return;
      try {
        this.answer(c, opts, s!, n);
      } catch (err) {
        if (!c.done) {
          c.stop();
          handler.onResponseError?.(c, err as Error);
        }
      }
    };
    if (s !== undefined && s.latencyMs > 0) c.timer = setTimeout(run, s.latencyMs);
    else queueMicrotask(run);
    return true;
  }

  private answer(c: MockController, opts: Dispatcher.DispatchOptions, s: MockSettings, n: number) {
    const h = c.handler;
    const body = JSON.parse(String(opts.body ?? "{}")) as Json;
    const path = opts.path;
    if (s.errorRate > 0 && Math.floor(n * s.errorRate) > Math.floor((n - 1) * s.errorRate)) {
      return this.json(c, s.errorStatus, {
        error: {
          message: `mock error (status ${s.errorStatus})`,
          type: "mock_error",
          param: null,
          code: String(s.errorStatus),
        },
      });
    }
    const model = typeof body.model === "string" ? body.model : "mock";
    const prompt = s.promptTokens ?? Math.max(1, Math.floor(promptChars(body) / 4));
    if (path.endsWith("/embeddings")) {
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      return this.json(c, 200, {
        object: "list",
        data: inputs.map((_, i) => ({
          object: "embedding",
          index: i,
          embedding: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        })),
        model,
        usage: { prompt_tokens: prompt, total_tokens: prompt },
      });
    }
    const chat = !path.endsWith("/completions") || path.endsWith("/chat/completions");
    const all = tokensOf(s.response);
    const cap = body.max_tokens ?? body.max_completion_tokens;
    const limit = !s.ignoreMaxTokens && typeof cap === "number" ? cap : Number.POSITIVE_INFINITY;
    const tokens = all.length > limit ? all.slice(0, limit) : all;
    const finish = all.length > limit ? "length" : "stop";
    const usage = { prompt_tokens: prompt, completion_tokens: tokens.length, total_tokens: prompt + tokens.length };
    const id = `chatcmpl-mock-${n}`;
    const created = Math.floor(Date.now() / 1000);
    if (body.stream !== true) {
      const text = tokens.join("");
      return this.json(
        c,
        200,
        chat
          ? {
              id,
              object: "chat.completion",
              created,
              model,
              choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: finish }],
              usage,
            }
          : {
              id,
              object: "text_completion",
              created,
              model,
              choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
              usage,
            },
      );
    }
    const includeUsage = (body.stream_options as Json | undefined)?.include_usage === true;
    const frames: string[] = [];
    const frame = (choice: Json | null, u?: Json) =>
      `data: ${JSON.stringify({
        id,
        object: chat ? "chat.completion.chunk" : "text_completion",
        created,
        model,
        choices: choice === null ? [] : [choice],
        ...(includeUsage ? { usage: u ?? null } : {}),
      })}\n\n`;
    if (chat) frames.push(frame({ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }));
    for (const t of tokens) {
      frames.push(
        frame(
          chat
            ? { index: 0, delta: { content: t }, finish_reason: null }
            : { index: 0, text: t, logprobs: null, finish_reason: null },
        ),
      );
    }
    frames.push(
      frame(chat ? { index: 0, delta: {}, finish_reason: finish } : { index: 0, text: "", finish_reason: finish }),
    );
    if (includeUsage) frames.push(frame(null, usage));
    frames.push("data: [DONE]\n\n");
    h.onResponseStart?.(c, 200, { "content-type": "text/event-stream" }, "OK");
    if (c.aborted) return;
    const breakAt = s.errorAfterChunks === undefined ? -1 : s.errorAfterChunks + (chat ? 1 : 0);
    let i = 0;
    const next = () => {
      c.timer = undefined;
      while (!c.aborted && i < frames.length) {
        if (i === breakAt) {
          c.stop();
          h.onResponseError?.(c, Object.assign(new Error("mock: upstream connection lost"), { code: "ECONNRESET" }));
          return;
        }
        h.onResponseData?.(c, Buffer.from(frames[i++]!));
        if (s.chunkDelayMs > 0 && i < frames.length) {
          c.timer = setTimeout(next, s.chunkDelayMs);
          return;
        }
      }
      if (!c.aborted) {
        c.stop();
        h.onResponseEnd?.(c, {});
      }
    };
    next();
  }

  private json(c: MockController, status: number, body: unknown) {
    const h = c.handler;
    const buf = Buffer.from(JSON.stringify(body));
    h.onResponseStart?.(c, status, { "content-type": "application/json" }, status === 200 ? "OK" : "Error");
    if (c.aborted) return;
    h.onResponseData?.(c, buf);
    if (c.aborted) return;
    c.stop();
    h.onResponseEnd?.(c, {});
  }

  close(): void {
    for (const c of [...this.live]) c.abort(new Error("mock provider closed"));
  }
}
