/**
 * One proxied LLM call (`/chat/completions`, `/completions`, `/embeddings`): validation, one admission, the
 * upstream call (streamed or not), and exactly one ticket outcome on every path:
 *
 * | path                                             | outcome                                              |
 * | ------------------------------------------------ | ---------------------------------------------------- |
 * | success                                          | `settle(usage)` (the response's usage)               |
 * | success without usage (stream or JSON)           | `settle(input estimate + output tokens streamed)`    |
 * | upstream error status / timeout / broken stream  | `fail(usage so far)`: request counted, rest refunded |
 * | refused by the proxy after admission / never sent| `release()`                                          |
 * | connection failure, retried on another deployment| `release()`, then a new admission                    |
 * | client disconnect (waiting or mid-stream)        | upstream aborted, `settle(what was streamed)`        |
 * | mid-stream cutoff                                | `settle(input estimate + exactly max_tokens)`        |
 * | proxy shutdown after the grace period            | upstream aborted, `fail(usage so far)`               |
 *
 * The call object is its own undici dispatch handler, so the upstream call allocates no closures or streams.
 */
import type { ServerResponse } from "node:http";
import { StringDecoder } from "node:string_decoder";
import {
  type BudgetSpec,
  budgetErrorBody,
  costOf,
  type Nano,
  nanoToUsdNumber,
  type SpendRecord,
  type Usage,
} from "@tollgate/budgets";
import {
  capAndEstimate,
  type Denial,
  type Descriptor,
  formatRateLimitMessage,
  formatResetDuration,
  type LimitStatus,
  type LlmCallType,
  rateLimitHeaders,
  retryAfterSeconds,
  TollgateError,
} from "@tollgate/core";
import type { GateAdmission, Ticket } from "./admission.js";
import { badRequest, errorBody, ProxyHttpError } from "./errors.js";
import { type Exchange, toHttpError } from "./exchange.js";
import type { EndUserPolicy } from "./identity.js";
import { withMock } from "./mock.js";
import type { ModelGroup } from "./routing.js";
import type { TollgateProxy } from "./server.js";
import { type Controller, isConnectionFailure, isTimeout, type Target } from "./upstream.js";

type Json = Record<string, unknown>;

export type CallKind = "chat" | "completion" | "embedding";
const PATHS: Record<CallKind, string> = {
  chat: "/chat/completions",
  completion: "/completions",
  embedding: "/embeddings",
};
const CALL_TYPES: Record<CallKind, LlmCallType> = { chat: "chat", completion: "completion", embedding: "embedding" };

/** How a call ended, for metrics, logs and spend records. */
export type CallStatus = "success" | "failure" | "denied" | "client_closed" | "cutoff";

const CALL = Symbol("tollgate.call");
type WithCall = ServerResponse & { [CALL]?: LlmCall };

function onResponseClose(this: WithCall): void {
  const call = this[CALL];
  if (call !== undefined && !this.writableFinished) call.clientClosed();
}

function onResponseDrain(this: WithCall): void {
  this[CALL]?.controller?.resume();
}

/** Reads an OpenAI usage object defensively: undefined when missing or malformed. */
export function readUsage(u: unknown): Usage | undefined {
  if (typeof u !== "object" || u === null) return undefined;
  const o = u as Json;
  const prompt = o.prompt_tokens ?? o.input_tokens;
  const completion = o.completion_tokens ?? o.output_tokens ?? 0;
  if (!isCount(prompt) || !isCount(completion)) return undefined;
  const pd = o.prompt_tokens_details as Json | null | undefined;
  const cd = o.completion_tokens_details as Json | null | undefined;
  let cached: unknown = pd?.cached_tokens ?? 0;
  let reasoning: unknown = cd?.reasoning_tokens ?? 0;
  if (!isCount(cached) || cached > prompt) cached = 0;
  if (!isCount(reasoning) || reasoning > completion) reasoning = 0;
  return {
    inputTokens: prompt,
    outputTokens: completion,
    cachedInputTokens: cached as number,
    reasoningTokens: reasoning as number,
  };
}

/**
 * The `usage` object of a completion body without parsing the whole body: the last `"usage":{…}` (usage holds only
 * numbers and nested objects whose keys hold no braces, so the brace that closes depth 0 ends it). Undefined when absent or unreadable.
 * `text` is the body as latin1 (byte offsets; usage is ASCII).
 */
export function usageIn(text: string): Usage | undefined {
  const at = text.lastIndexOf('"usage"');
  if (at === -1) return undefined;
  let i = at + 7;
  while (i < text.length && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 58 || text.charCodeAt(i) === 10)) i++;
  if (text.charCodeAt(i) !== 123) return undefined; // '{'
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 123) depth++;
    else if (c === 125 && --depth === 0) {
      try {
        return readUsage(JSON.parse(text.slice(i, j + 1)));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function isCount(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

function checkCap(body: Json, field: string): void {
  const v = body[field];
  if (v === undefined || v === null) return;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    throw badRequest(`${field} must be a positive integer, got ${JSON.stringify(v)}`, field);
  }
}

const NO_LIMITS: readonly Descriptor[] = [];
const NO_STATUSES: readonly LimitStatus[] = [];
const NO_TARGETS: Target[] = [];
const NO_COUNTS: number[] = [];
const EMPTY = Buffer.alloc(0);
const NO_BUDGETS: readonly BudgetSpec[] = [];

export class LlmCall {
  readonly proxy: TollgateProxy;
  private readonly ex: Exchange;
  private readonly res: WithCall;
  private body!: Json;
  private model = "";
  private group!: ModelGroup;
  private endUserId: string | undefined;
  private inputEstimate = 0;
  private outputEstimate = 0;
  private limits: Descriptor[] = [];
  private budgets: BudgetSpec[] = [];
  private ticket: Ticket | undefined;
  private statuses: readonly LimitStatus[] = NO_STATUSES;
  /** The store's clock at the admission (reset times of the limit headers are measured from it). */
  private admittedAt = 0;
  private target: Target | undefined;
  private order: Target[] = NO_TARGETS;
  private attempt = 0;
  private retries = 0;
  private stream = false;
  private clientUsage = false;
  /** Output tokens the upstream may produce (max_tokens sent); the cutoff point of a stream. */
  private allowedOutput: number | null = null;
  controller: Controller | undefined;
  private upstreamT0 = 0;
  private upstreamMs = 0;
  private status = 0;
  /** Non-streaming body: the first chunk, then the rest when there are more. */
  private first: Buffer | undefined;
  private chunks: Buffer[] | undefined;
  private size = 0;
  private streaming = false;
  private decoder: StringDecoder | undefined;
  private pending = "";
  private counts: number[] = NO_COUNTS;
  private usage: Usage | undefined;
  private sawDone = false;
  private upstreamErrorFrame = false;
  /** Why we aborted the upstream call ourselves (its error callback is then expected). */
  private aborting: "client" | "cutoff" | "shutdown" | "timeout" | undefined;
  private gone = false;
  private ended = false;
  private finished = false;
  private outcome: CallStatus | undefined;
  /** What the ticket charged to budgets (its SpendRecord), for the spend record. */
  private charged: SpendRecord | undefined;
  private cost: Nano = 0;
  /** Settle/fail/release in progress or done (exactly once). */
  private finishing: Promise<void> | undefined;
  readonly startedAt: number;
  lastRenew = 0;

  constructor(
    ex: Exchange,
    private readonly kind: CallKind,
  ) {
    this.ex = ex;
    this.proxy = ex.proxy;
    this.res = ex.res as WithCall;
    this.startedAt = Date.now();
  }

  get callId(): string {
    return this.ex.callId;
  }

  get openTicket(): Ticket | undefined {
    return this.ticket !== undefined && this.finishing === undefined ? this.ticket : undefined;
  }

  /** Runs the call; never rejects (every error becomes an answer). */
  async run(): Promise<void> {
    const res = this.res;
    res[CALL] = this;
    res.on("close", onResponseClose); // emitted once; `on` spares the once-wrapper per request
    this.proxy.inflight.add(this);
    try {
      await this.prepare();
      if (this.gone) return this.settleClosedBeforeUpstream();
      this.send();
    } catch (err) {
      await this.refuse(err);
    }
  }

  /** Validates the body, resolves the model group and end user, and admits the request. */
  private async prepare(): Promise<void> {
    const ex = this.ex;
    const proxy = this.proxy;
    const body = ex.json();
    this.body = body;
    const model = body.model;
    if (typeof model !== "string" || model === "") {
      throw badRequest("model is required: pass the name of one of the models in /v1/models", "model");
    }
    this.model = model;
    const group = proxy.groups.get(model);
    if (group === undefined) {
      throw new ProxyHttpError(
        400,
        `Invalid model name passed in model=${model}. Call \`/v1/models\` to view available models for your key.`,
        "invalid_request_error",
        "model",
      );
    }
    this.group = group;
    const identity = ex.identity!;
    if (identity.models !== null && !proxy.modelAllowed(identity.models, model)) {
      throw new ProxyHttpError(
        403,
        `key not allowed to access model. This key can only access models=${JSON.stringify(identity.models)}. Tried to access ${model}`,
        "key_model_access_denied",
        "model",
      );
    }
    if (this.kind !== "embedding") {
      if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") {
        throw badRequest(`stream must be a boolean, got ${JSON.stringify(body.stream)}`, "stream");
      }
      this.stream = body.stream === true;
      checkCap(body, "max_tokens");
      checkCap(body, "max_completion_tokens");
      if (this.kind === "chat" && !Array.isArray(body.messages)) {
        throw badRequest("messages is required and must be an array", "messages");
      }
      if (this.kind === "completion" && typeof body.prompt !== "string" && !Array.isArray(body.prompt)) {
        throw badRequest("prompt is required and must be a string or an array", "prompt");
      }
    } else if (body.input === undefined || body.input === null) {
      throw badRequest("input is required", "input");
    }
    if (this.stream) {
      const so = body.stream_options;
      if (so !== undefined && so !== null && (typeof so !== "object" || Array.isArray(so))) {
        throw badRequest("stream_options must be an object", "stream_options");
      }
      this.clientUsage = (so as Json | null | undefined)?.include_usage === true;
    }

    // end user: the body's `user`, else LiteLLM's headers
    const h = ex.req.headers;
    const user = body.user ?? h["x-litellm-end-user-id"] ?? h["x-litellm-customer-id"];
    if (user !== undefined && user !== null && user !== "") {
      if (typeof user !== "string") throw badRequest("user must be a string", "user");
      if (user.includes("{") || user.includes("}")) throw badRequest("user must not contain { or }", "user");
      this.endUserId = user;
    }
    let endUser: EndUserPolicy | undefined;
    if (this.endUserId !== undefined) {
      const r = proxy.endUsers.resolve(this.endUserId, identity);
      endUser = r instanceof Promise ? await r : r;
    }

    // limits and budgets: identity (+ per model) + end user + global; the deployment's own is added per attempt
    const limits: Descriptor[] = [];
    const gate = proxy.gate;
    for (const d of identity.limits) limits.push(gate.counted(d));
    const per = identity.modelLimits?.(model) ?? NO_LIMITS;
    for (const d of per) limits.push(gate.counted(d));
    for (const d of endUser?.limits ?? NO_LIMITS) limits.push(gate.counted(d));
    this.limits = limits;
    const budgets: BudgetSpec[] = [];
    for (const b of identity.budgets) budgets.push(b);
    for (const b of endUser?.budgets ?? NO_BUDGETS) budgets.push(b);
    for (const b of proxy.globalBudgets) budgets.push(b);
    this.budgets = budgets;

    // token estimate (LiteLLM's), with its small-TPM output cap
    let minTpm = group.minTpm;
    for (const d of limits)
      if (d.tokens !== undefined && (minTpm === undefined || d.tokens < minTpm)) minTpm = d.tokens;
    const { body: capped, estimate } = capAndEstimate(body, {
      callType: CALL_TYPES[this.kind],
      minTpmLimit: minTpm,
    });
    if (capped !== body) {
      body.max_tokens = (capped as Json).max_tokens;
    }
    this.inputEstimate = estimate.input;
    this.outputEstimate = estimate.output;
    if (this.kind !== "embedding") {
      const a = body.max_tokens;
      const b = body.max_completion_tokens;
      const cap =
        typeof a === "number" ? (typeof b === "number" ? Math.max(a, b) : a) : typeof b === "number" ? b : null;
      this.allowedOutput = cap;
    }
    await this.admit(proxy.now());
  }

  /** One admission per deployment tried, in the group's order, until one admits. */
  private async admit(now: number): Promise<void> {
    const proxy = this.proxy;
    const order = this.order.length > 0 ? this.order : this.group.order(now);
    this.order = order;
    let firstDenial: GateAdmission | undefined;
    let soonest = Number.POSITIVE_INFINITY;
    for (; this.attempt < order.length; this.attempt++) {
      const target = order[this.attempt]!;
      const dep = target.deployment;
      const dd = proxy.deploymentDescriptor(dep.id);
      // a fresh array per deployment: the gate keeps the one it was given (statuses are built from it on access)
      const limits = dd === undefined ? this.limits : this.limits.concat(dd);
      let output = this.outputEstimate;
      let shrinkTries = 0;
      for (;;) {
        const t0 = performance.now();
        let a: GateAdmission;
        try {
          a = await proxy.gate.admit({
            id:
              this.attempt === 0 && shrinkTries === 0
                ? this.ex.callId
                : `${this.ex.callId}.${this.attempt}.${shrinkTries}`,
            limits,
            tokens: { input: this.inputEstimate, output },
            model: this.group.name,
            budgets: this.budgets,
            maxTokens: this.kind === "embedding" ? 0 : this.allowedOutput,
          });
        } finally {
          proxy.metrics.storeLatency("admit", performance.now() - t0);
        }
        proxy.metrics.decisions(a);
        if (a.ok) {
          if (this.gone) {
            this.ticket = a.ticket;
            return;
          }
          this.ticket = a.ticket;
          this.statuses = a.statuses;
          this.admittedAt = a.now;
          this.target = target;
          if (a.shrunk && a.maxTokens !== null) this.capOutput(a.maxTokens);
          else if (output < this.outputEstimate) this.capOutput(output);
          return;
        }
        // a token limit (the caller's or the deployment's): lower max_tokens to what fits (mid-stream cutoff keeps the upstream to it)
        if (
          a.reason === "rate_limit" &&
          a.denial.type === "tokens" &&
          proxy.config.shrinkMaxTokens &&
          proxy.config.tokenRateLimitType !== "input" &&
          this.kind !== "embedding" &&
          shrinkTries < 2
        ) {
          const fits = a.denial.remaining - (proxy.config.tokenRateLimitType === "output" ? 0 : this.inputEstimate);
          if (fits >= 1 && fits < output) {
            output = fits;
            shrinkTries++;
            continue;
          }
        }
        if (a.reason === "rate_limit" && a.denial.scope === "deployment") {
          this.group.cool(target, a.now + a.denial.retryAfterMs);
          soonest = Math.min(soonest, a.denial.retryAfterMs);
          firstDenial ??= a;
          break;
        }
        throw this.denialError(a);
      }
    }
    // every deployment is at its own limit
    const d = (firstDenial as { denial: Denial }).denial;
    throw new ProxyHttpError(
      429,
      `No deployments available for selected model, Try again in ${retryAfterSeconds({ retryAfterMs: soonest })} seconds. Passed model=${this.model}. ${formatRateLimitMessage(d)}`,
      "rate_limit_error",
      null,
      rateLimitHeaders((firstDenial as { statuses: LimitStatus[] }).statuses, { ...d, retryAfterMs: soonest }),
    );
  }

  private capOutput(cap: number): void {
    const body = this.body;
    let set = false;
    for (const f of ["max_tokens", "max_completion_tokens"]) {
      const v = body[f];
      if (typeof v === "number") {
        if (v > cap) body[f] = cap;
        set = true;
      }
    }
    if (!set) body.max_tokens = cap;
    this.allowedOutput = this.allowedOutput === null ? cap : Math.min(this.allowedOutput, cap);
  }

  private denialError(a: GateAdmission): ProxyHttpError {
    if (a.ok) throw new Error("unreachable");
    if (a.reason === "rate_limit") {
      return new ProxyHttpError(
        429,
        formatRateLimitMessage(a.denial),
        "rate_limit_error",
        null,
        rateLimitHeaders(a.statuses, a.denial),
      );
    }
    const status = this.proxy.config.budgetExceededStatus;
    const body = budgetErrorBody(a.denial, status);
    return new ProxyHttpError(status, body.error.message, "budget_exceeded", null);
  }

  /** Builds the upstream body and dispatches it to the current target. */
  private send(): void {
    const target = this.target!;
    const dep = target.deployment;
    const body = this.body;
    body.model = dep.upstreamModel;
    if (this.stream) {
      const so = body.stream_options as Json | undefined | null;
      if (so === undefined || so === null) body.stream_options = { include_usage: true };
      else if (so.include_usage !== true) so.include_usage = true;
    }
    const timeout = this.stream ? dep.streamTimeoutMs : dep.timeoutMs;
    const opts = {
      path: target.basePath + PATHS[this.kind],
      method: "POST" as const,
      headers: target.headers,
      body: JSON.stringify(body),
      headersTimeout: timeout,
      bodyTimeout: timeout,
    };
    this.status = 0;
    this.upstreamT0 = performance.now();
    target.dispatcher.dispatch(dep.mock === undefined ? opts : withMock(opts, dep.mock), this);
  }

  // ---- undici dispatch handler -------------------------------------------------------------------------------

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    if (this.gone) {
      this.aborting = "client";
      controller.abort(new Error("client disconnected"));
    }
  }

  onResponseStart(_c: Controller, status: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = status;
    if (this.gone) return;
    const type = headers["content-type"];
    if (this.stream && status < 300 && typeof type === "string" && type.includes("text/event-stream")) {
      this.startStream();
    }
  }

  onResponseData(_c: Controller, chunk: Buffer): void {
    if (this.streaming) {
      this.streamData(chunk);
      return;
    }
    this.size += chunk.length;
    if (this.size > this.proxy.maxResponseBytes) {
      this.aborting = "timeout";
      this.controller?.abort(new Error("upstream response too large"));
      return;
    }
    if (this.first === undefined) this.first = chunk;
    else if (this.chunks === undefined) this.chunks = [this.first, chunk];
    else this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    this.controller = undefined;
    this.upstreamMs = performance.now() - this.upstreamT0;
    this.proxy.metrics.upstreamLatency(this.model, this.upstreamMs);
    if (this.streaming) {
      void this.endStream();
      return;
    }
    void this.completeJson();
  }

  onResponseError(_c: Controller, err: Error): void {
    this.upstreamMs = performance.now() - this.upstreamT0;
    const why = this.aborting;
    if (why === "cutoff") return; // the stream was already ended by the cutoff
    if (why === "client" || this.gone) {
      void this.finish("client_closed", this.soFar(), "settle").then(() => this.end());
      return;
    }
    if (why === "shutdown") {
      this.answerUpstreamError(
        503,
        "The proxy is shutting down; the upstream call was cancelled",
        "service_unavailable",
      );
      return;
    }
    if (
      !this.streaming &&
      this.status === 0 &&
      isConnectionFailure(err) &&
      this.retries < this.proxy.config.numRetries &&
      this.attempt + 1 < this.order.length
    ) {
      void this.retry(err);
      return;
    }
    if (isTimeout(err) || why === "timeout") {
      const dep = this.target!.deployment;
      const secs = (this.stream ? dep.streamTimeoutMs : dep.timeoutMs) / 1000;
      this.answerUpstreamError(
        408,
        `litellm.Timeout: APITimeoutError - Request timed out. Upstream ${dep.apiBase || "mock"} did not answer within ${secs} seconds (${(err as { code?: string }).code ?? err.message})`,
        "timeout_error",
      );
      return;
    }
    this.answerUpstreamError(
      502,
      `Upstream connection error: ${(err as { code?: string }).code ?? ""} ${err.message}`.trim(),
      "api_error",
    );
  }

  // ---- non-streaming -----------------------------------------------------------------------------------------

  private async completeJson(): Promise<void> {
    const chunks = this.chunks;
    const raw = chunks !== undefined ? Buffer.concat(chunks) : (this.first ?? EMPTY);
    this.first = undefined;
    this.chunks = undefined;
    if (this.gone) {
      await this.finish("client_closed", this.soFar(), "settle");
      return this.end();
    }
    if (this.status >= 300) {
      await this.passError(raw);
      return;
    }
    const text = raw.toString("latin1");
    let usage = usageIn(text);
    if (usage === undefined) {
      // no usage object found by the scan: check the body is JSON at all, and read a usage it may still hold
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw.toString("utf8"));
      } catch {
        parsed = undefined;
      }
      if (typeof parsed !== "object" || parsed === null) {
        await this.finish("failure", undefined, "fail");
        this.respondError(new ProxyHttpError(502, "Upstream answered invalid JSON", "api_error"));
        return;
      }
      usage = readUsage((parsed as Json).usage);
    }
    await this.finish("success", usage ?? "estimate", "settle");
    if (this.gone) return this.end();
    const res = this.res;
    const h = this.successHeaders("application/json", true);
    h.push("content-length", String(raw.length));
    res.writeHead(200, h);
    res.end(raw);
    this.end();
  }

  /** Upstream error status: the body passes through when it is OpenAI's shape, else it is wrapped. */
  private async passError(raw: Buffer): Promise<void> {
    await this.finish("failure", undefined, "fail");
    if (this.gone) return this.end();
    let text = raw.toString("utf8");
    let ok = false;
    try {
      const j = JSON.parse(text) as Json;
      ok = typeof j.error === "object" && j.error !== null;
    } catch {
      ok = false;
    }
    if (!ok) {
      text = errorBody(
        `Upstream error ${this.status}: ${text.slice(0, 500)}`,
        this.status === 429 ? "rate_limit_error" : "api_error",
        null,
        String(this.status),
      );
    }
    const res = this.res;
    this.ex.responded = true;
    res.writeHead(this.status, this.baseHeaders("application/json", false));
    res.end(text);
    this.end();
  }

  // ---- streaming ---------------------------------------------------------------------------------------------

  private startStream(): void {
    this.streaming = true;
    this.decoder = new StringDecoder("utf8");
    const res = this.res;
    this.ex.responded = true;
    res.writeHead(200, this.successHeaders("text/event-stream", false));
    res.on("drain", onResponseDrain);
  }

  private streamData(chunk: Buffer): void {
    if (this.aborting === "cutoff" || this.gone) return;
    let text = this.pending + this.decoder!.write(chunk);
    let out = "";
    let start = 0;
    for (;;) {
      let end = text.indexOf("\n\n", start);
      let sep = 2;
      const crlf = text.indexOf("\r\n\r\n", start);
      if (crlf !== -1 && (end === -1 || crlf < end)) {
        end = crlf;
        sep = 4;
      }
      if (end === -1) break;
      const ev = text.slice(start, end);
      start = end + sep;
      const w = this.streamEvent(ev);
      if (w !== null) out += w;
      if (this.isCutoff()) {
        text = "";
        start = 0;
        break;
      }
    }
    this.pending = start === 0 ? text : text.slice(start);
    if (out !== "" && !this.res.write(out)) this.controller?.pause();
    if (this.isCutoff()) void this.finishCutoff();
  }

  private isCutoff(): boolean {
    return this.aborting === "cutoff";
  }

  /** One SSE event: what to send the client (null: nothing). */
  private streamEvent(ev: string): string | null {
    if (!ev.startsWith("data:")) return ev === "" ? null : `${ev}\n\n`;
    const data = ev.charCodeAt(5) === 32 ? ev.slice(6) : ev.slice(5);
    if (data === "[DONE]") {
      this.sawDone = true;
      return null;
    }
    let obj: Json;
    try {
      obj = JSON.parse(data) as Json;
    } catch {
      return `${ev}\n\n`;
    }
    if (obj.error !== undefined && obj.error !== null) {
      this.upstreamErrorFrame = true;
      return `${ev}\n\n`;
    }
    const u = obj.usage;
    if (u !== undefined && u !== null) {
      const usage = readUsage(u);
      if (usage !== undefined) this.usage = usage;
    }
    const choices = obj.choices;
    if (Array.isArray(choices)) {
      const allowed = this.allowedOutput;
      for (const c of choices as Json[]) {
        if (typeof c !== "object" || c === null) continue;
        const idx = typeof c.index === "number" && c.index >= 0 && c.index < 128 ? c.index : 0;
        if (!hasOutput(c)) continue;
        const n = (this.counts[idx] ?? 0) + 1;
        if (allowed !== null && n > allowed) {
          this.aborting = "cutoff";
          return this.cutoffFrames(obj, idx);
        }
        if (this.counts === NO_COUNTS) this.counts = [];
        this.counts[idx] = n;
      }
      if (!this.clientUsage && u !== undefined) {
        if (choices.length === 0) return null; // the usage chunk the client did not ask for
        delete obj.usage;
        return `data: ${JSON.stringify(obj)}\n\n`;
      }
    }
    return `${ev}\n\n`;
  }

  /** Frames that end a stream at the cutoff: a `finish_reason: "length"` chunk, the usage chunk when asked, [DONE]. */
  private cutoffFrames(last: Json, idx: number): string {
    const base = { id: last.id, object: last.object, created: last.created, model: last.model };
    const choice =
      this.kind === "chat"
        ? { index: idx, delta: {}, finish_reason: "length" }
        : { index: idx, text: "", logprobs: null, finish_reason: "length" };
    let out = `data: ${JSON.stringify({ ...base, choices: [choice] })}\n\n`;
    if (this.clientUsage) {
      const u = this.soFar();
      out += `data: ${JSON.stringify({
        ...base,
        choices: [],
        usage: {
          prompt_tokens: u.inputTokens,
          completion_tokens: u.outputTokens,
          total_tokens: u.inputTokens + (u.outputTokens ?? 0),
        },
      })}\n\n`;
    }
    return out;
  }

  private async finishCutoff(): Promise<void> {
    this.controller?.abort(new Error("tollgate: output limit reached"));
    this.proxy.metrics.cutoff();
    await this.finish("cutoff", this.soFar(), "settle");
    if (!this.gone) this.res.end("data: [DONE]\n\n");
    this.end();
  }

  private async endStream(): Promise<void> {
    const tail = this.decoder!.end();
    if (tail !== "" || this.pending !== "") {
      const rest = this.pending + tail;
      this.pending = "";
      const w = rest.trim() === "" ? null : this.streamEvent(rest.trimEnd());
      if (w !== null) this.res.write(w);
      if (this.isCutoff()) return this.finishCutoff();
    }
    if (this.upstreamErrorFrame) await this.finish("failure", this.soFar(), "fail");
    else await this.finish("success", this.usage ?? this.soFar(), "settle");
    if (!this.gone) this.res.end(this.sawDone || !this.upstreamErrorFrame ? "data: [DONE]\n\n" : undefined);
    this.end();
  }

  /** Tokens used so far: the usage when the upstream sent one, else the estimate's input + output streamed. */
  private soFar(): Usage {
    if (this.usage !== undefined) return this.usage;
    let out = 0;
    const allowed = this.allowedOutput;
    for (const n of this.counts) if (n !== undefined) out += allowed !== null && n > allowed ? allowed : n;
    return { inputTokens: this.inputEstimate, outputTokens: out };
  }

  // ---- errors, retries, outcomes -----------------------------------------------------------------------------

  private answerUpstreamError(status: number, message: string, type: string): void {
    const usage = this.streaming ? this.soFar() : undefined;
    void this.finish("failure", usage, "fail").then(() => {
      if (this.streaming) {
        if (!this.gone) {
          this.res.end(`data: ${errorBody(message, type, null, String(status))}\n\n`);
        }
        this.end();
        return;
      }
      this.respondError(new ProxyHttpError(status, message, type));
    });
  }

  /** Connection failure before anything was sent: release this admission and admit on the next deployment. */
  private async retry(err: Error): Promise<void> {
    this.retries++;
    const ticket = this.ticket!;
    this.ticket = undefined;
    this.proxy.log.warn(
      { callId: this.ex.callId, deployment: this.target?.deployment.id, err: (err as { code?: string }).code },
      "upstream connection failed; retrying on another deployment",
    );
    try {
      await ticket.release();
      this.attempt++;
      await this.admit(this.proxy.now());
      if (this.gone) return this.settleClosedBeforeUpstream();
      this.send();
    } catch (e) {
      await this.refuse(e);
    }
  }

  /** An error before the upstream call: release what was admitted, answer the error. */
  private async refuse(err: unknown): Promise<void> {
    const e = toHttpError(err);
    if (e.status === 500) this.proxy.log.error({ callId: this.ex.callId, err }, "request failed");
    const denied = e.status === 429 || e.type === "budget_exceeded";
    await this.finish(denied ? "denied" : "failure", undefined, "release");
    this.respondError(e);
  }

  private async settleClosedBeforeUpstream(): Promise<void> {
    await this.finish("client_closed", undefined, "release");
    this.end();
  }

  /**
   * The ticket's one outcome. `settle` with usage (or the estimate), `fail` with the usage so far, `release`.
   * Later calls do nothing. Store errors here are logged (the lease expires by itself), never thrown.
   */
  private finish(status: CallStatus, usage: Usage | "estimate" | undefined, how: "settle" | "fail" | "release") {
    if (this.finishing !== undefined) return this.finishing;
    this.outcome = status;
    const ticket = this.ticket;
    if (ticket === undefined) {
      this.finished = true;
      this.finishing = Promise.resolve();
      return this.finishing;
    }
    const proxy = this.proxy;
    const price = proxy.prices.get(this.group.name);
    const u: Usage | undefined =
      usage === "estimate" ? { inputTokens: this.inputEstimate, outputTokens: this.outputEstimate } : usage;
    if (how !== "release" && u !== undefined && price !== undefined) {
      try {
        this.cost = costOf(price, u);
      } catch {
        this.cost = 0;
      }
    }
    this.usage = u ?? this.usage;
    const t0 = performance.now();
    const p = how === "settle" ? ticket.settle(u ?? "estimate") : how === "fail" ? ticket.fail(u) : ticket.release();
    this.finishing = p.then(
      (outcome) => {
        this.finished = true;
        proxy.metrics.storeLatency(how, performance.now() - t0);
        if (outcome.status === "applied" && outcome.record !== undefined) this.charged = outcome.record;
      },
      (err: unknown) => {
        this.finished = true;
        proxy.log.error({ callId: this.ex.callId, err, how }, "ticket outcome failed; the lease will expire");
      },
    );
    return this.finishing;
  }

  /** The client went away: abort the upstream call (its error callback settles), or mark for the admission. */
  clientClosed(): void {
    if (this.gone) return;
    this.gone = true;
    const c = this.controller;
    if (c !== undefined && this.finishing === undefined && this.aborting === undefined) {
      this.aborting = "client";
      c.abort(new Error("client disconnected"));
    }
  }

  /** Shutdown after the grace period: abort the upstream call; the call fails with 503. */
  abortForShutdown(): void {
    const c = this.controller;
    if (c !== undefined && this.finishing === undefined && this.aborting === undefined) {
      this.aborting = "shutdown";
      c.abort(new Error("proxy shutting down"));
    }
  }

  private respondError(e: ProxyHttpError): void {
    if (!this.gone && !this.res.headersSent) {
      this.ex.responded = true;
      const res = this.res;
      const h = this.baseHeaders("application/json", false);
      if (e.headers !== undefined) for (const k in e.headers) h.push(k, e.headers[k]!);
      res.writeHead(e.status, h);
      res.end(e.body());
      this.status = e.status;
    } else if (!this.res.writableEnded) this.res.end();
    if (this.status === 0) this.status = e.status;
    this.end(e);
  }

  private baseHeaders(type: string, _withCost: boolean): string[] {
    const h = ["content-type", type, "x-litellm-call-id", this.ex.callId, "x-litellm-model-group", this.model];
    if (this.target !== undefined) h.push("x-litellm-model-id", this.target.deployment.id);
    return h;
  }

  private successHeaders(type: string, withCost: boolean): string[] {
    const h = this.baseHeaders(type, withCost);
    const dep = this.target!.deployment;
    if (dep.apiBase !== "") h.push("x-litellm-model-api-base", dep.apiBase);
    if (type === "text/event-stream") h.push("cache-control", "no-cache");
    const now = performance.now();
    const total = now - this.ex.t0;
    const upstream = this.streaming ? now - this.upstreamT0 : this.upstreamMs;
    h.push("x-litellm-overhead-duration-ms", (total - upstream).toFixed(3));
    h.push("x-litellm-response-duration-ms", total.toFixed(3));
    if (withCost) h.push("x-litellm-response-cost", String(nanoToUsdNumber(this.cost)));
    if (this.retries > 0) h.push("x-litellm-attempted-retries", String(this.retries));
    if (this.statuses.length > 0) limitHeaders(h, this.statuses, this.admittedAt);
    return h;
  }

  /** The call is over once the response ended; metrics, spend record, in-flight bookkeeping. */
  private end(err?: ProxyHttpError): void {
    if (this.ended) return;
    this.ended = true;
    if (this.finished || this.finishing === undefined) this.wrapUp(err);
    else void this.finishing.then(() => this.wrapUp(err));
  }

  private wrapUp(err: ProxyHttpError | undefined): void {
    const proxy = this.proxy;
    {
      this.res.off("drain", onResponseDrain);
      const status = this.outcome ?? "failure";
      const http = this.gone ? 499 : this.status || 500;
      proxy.metrics.request(this.model || "unknown", http);
      proxy.metrics.addedLatency(performance.now() - this.ex.t0 - this.upstreamMs);
      if (status !== "success") {
        proxy.log.info(
          { callId: this.ex.callId, model: this.model, status, http, err: err?.message },
          "request not successful",
        );
      }
      if (proxy.spend.active) proxy.spend.emit(this.spendRecord(status, http));
      proxy.callEnded(this);
    }
    this.release();
  }

  /**
   * Drops what the finished call still points to. A call that was in flight during a young-generation GC lives on in
   * the old generation until the next full GC; whatever it still references (the body, the answer, the upstream
   * controller with its raw headers, the ticket and statuses) would be kept and promoted with it.
   */
  private release(): void {
    this.body = undefined as unknown as Json;
    this.controller = undefined;
    this.ticket = undefined;
    this.statuses = NO_STATUSES;
    this.order = NO_TARGETS;
    this.limits = [];
    this.budgets = [];
    this.usage = undefined;
    this.charged = undefined;
    this.first = undefined;
    this.chunks = undefined;
    this.decoder = undefined;
    this.res[CALL] = undefined;
    this.ex.release();
  }

  private spendRecord(status: CallStatus, http: number) {
    const id = this.ex.identity;
    const u = this.usage;
    return {
      requestId: this.ex.callId,
      keyHash: id?.keyHash,
      keyAlias: id?.keyAlias,
      userId: id?.userId,
      teamId: id?.teamId,
      orgId: id?.orgId,
      endUserId: this.endUserId,
      model: this.model,
      deploymentId: this.target?.deployment.id,
      apiBase: this.target?.deployment.apiBase,
      callType: this.kind,
      inputTokens: status === "denied" || this.ticket === undefined ? 0 : (u?.inputTokens ?? 0),
      outputTokens: status === "denied" || this.ticket === undefined ? 0 : (u?.outputTokens ?? 0),
      cachedInputTokens: u?.cachedInputTokens ?? 0,
      spendNano: this.cost,
      spend: nanoToUsdNumber(this.cost),
      status,
      httpStatus: http,
      stream: this.stream,
      startTime: this.startedAt,
      endTime: Date.now(),
      metadata: id?.metadata,
      ...(this.charged === undefined
        ? {}
        : { charged: { scopes: this.charged.scopes, periods: this.charged.periods, time: this.charged.time } }),
    };
  }
}

/**
 * Success headers of the request's limits (the same as core's `rateLimitHeaders` without the IETF family, written
 * straight into the header list): LiteLLM's `x-ratelimit-<scope>-{remaining,limit}-<type>` per scope (first wins),
 * OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the enforced limit with the least remaining.
 */
function limitHeaders(h: string[], statuses: readonly LimitStatus[], now: number): void {
  let requests: LimitStatus | undefined;
  let tokens: LimitStatus | undefined;
  for (let i = 0; i < statuses.length; i++) {
    const s = statuses[i]!;
    let dup = false;
    for (let j = 0; j < i; j++) {
      const o = statuses[j]!;
      if (o.scope === s.scope && o.type === s.type) {
        dup = true;
        break;
      }
    }
    if (dup) continue;
    const names = scopeHeaderNames(s.scope, s.type);
    h.push(names[0], String(Math.max(s.remaining, 0)), names[1], String(s.limit));
    if (!s.enforced) continue;
    if (s.type === "requests") {
      if (requests === undefined || s.remaining < requests.remaining) requests = s;
    } else if (s.type === "tokens") {
      if (tokens === undefined || s.remaining < tokens.remaining) tokens = s;
    }
  }
  if (requests !== undefined) openaiLimit(h, "requests", requests, now);
  if (tokens !== undefined) openaiLimit(h, "tokens", tokens, now);
}

/** `x-ratelimit-<scope>-remaining-<type>` and `x-ratelimit-<scope>-limit-<type>`, built once per scope and type. */
const SCOPE_HEADERS = new Map<string, Map<string, [string, string]>>();

function scopeHeaderNames(scope: string, type: string): [string, string] {
  let byType = SCOPE_HEADERS.get(scope);
  if (byType === undefined) {
    byType = new Map();
    // scopes are a small fixed set (LiteLLM's), but a custom scope name must not grow this without bound
    if (SCOPE_HEADERS.size < 256) SCOPE_HEADERS.set(scope, byType);
  }
  let names = byType.get(type);
  if (names === undefined) {
    names = [`x-ratelimit-${scope}-remaining-${type}`, `x-ratelimit-${scope}-limit-${type}`];
    byType.set(type, names);
  }
  return names;
}

const OPENAI_HEADERS = {
  requests: ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"],
  tokens: ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"],
} as const;

function openaiLimit(h: string[], kind: "requests" | "tokens", s: LimitStatus, now: number): void {
  const names = OPENAI_HEADERS[kind];
  h.push(
    names[0],
    String(s.limit),
    names[1],
    String(Math.max(s.remaining, 0)),
    names[2],
    formatResetDuration(Number.isFinite(s.resetAt) ? s.resetAt - now : 0),
  );
}

function hasOutput(c: Json): boolean {
  const d = c.delta as Json | undefined;
  if (d !== undefined && d !== null) {
    const content = d.content;
    if (typeof content === "string" && content !== "") return true;
    if (Array.isArray(d.tool_calls) && d.tool_calls.length > 0) return true;
    const r = d.reasoning_content ?? d.refusal;
    return typeof r === "string" && r !== "";
  }
  return typeof c.text === "string" && c.text !== "";
}

/** Exposed for tests. */
export const __test = { hasOutput, TollgateError };
