/**
 * Plug point 2 (routes): every request is an {@link Exchange}, the context a route handler receives. Routes are a
 * table of `METHOD path → handler(ctx)` ({@link RouteTable}); `proxy.routes.add(...)` mounts more (the management API
 * of issue 13 mounts `/key/generate`, `/team/new`, ... this way).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { TollgateError } from "@tollgate/core";
import { errorBody, ProxyHttpError, typeForStatus } from "./errors.js";
import type { Identity } from "./identity.js";
import type { TollgateProxy } from "./server.js";

/** A route handler. Throw (or reject with) a `ProxyHttpError` to answer an error. */
export type RouteHandler = (ctx: Exchange) => void | Promise<void>;

export interface RouteOptions {
  /**
   * `"required"`: the caller is authenticated first (401 when refused) and `ctx.identity` is set.
   * `"none"`: no authentication (health, metrics). @default "required"
   */
  auth?: "required" | "none";
  /** Read and parse a JSON body first (`ctx.body`). @default true for POST, PUT, PATCH, DELETE */
  body?: boolean;
}

export interface Route {
  handler: RouteHandler;
  auth: "required" | "none";
  body: boolean;
}

/** `METHOD path` → route. Paths are exact (no parameters; use the query string), e.g. `GET /key/info`. */
export class RouteTable {
  private readonly map = new Map<string, Route>();
  private readonly paths = new Set<string>();

  add(method: string, path: string, handler: RouteHandler, options: RouteOptions = {}): void {
    const m = method.toUpperCase();
    const key = `${m} ${path}`;
    if (this.map.has(key)) throw new Error(`route ${key} is already registered`);
    this.map.set(key, {
      handler,
      auth: options.auth ?? "required",
      body: options.body ?? (m === "POST" || m === "PUT" || m === "PATCH" || m === "DELETE"),
    });
    this.paths.add(path);
  }

  get(method: string, path: string): Route | undefined {
    return this.map.get(`${method} ${path}`);
  }

  /** Whether some method serves this path (for 405 instead of 404). */
  hasPath(path: string): boolean {
    return this.paths.has(path);
  }
}

type Json = Record<string, unknown>;

/** The exchange of a request, kept on the `IncomingMessage` for the body listeners (no closure per request). */
export const EXCHANGE = Symbol("tollgate.exchange");
type WithExchange = IncomingMessage & { [EXCHANGE]?: Exchange };

function onBodyData(this: WithExchange, chunk: Buffer): void {
  this[EXCHANGE]?.bodyData(chunk, this);
}

function onBodyEnd(this: WithExchange): void {
  this[EXCHANGE]?.bodyEnd();
}

/** Keeps a client's broken upload from crashing the process; the exchange stops reading. */
export function onRequestError(this: WithExchange): void {
  const ex = this[EXCHANGE];
  if (ex !== undefined) ex.bodyFailed = true;
}

function tooLarge(limit: number): ProxyHttpError {
  return new ProxyHttpError(
    413,
    `Request body too large: the limit is ${limit} bytes (general_settings.max_request_size_mb)`,
    "invalid_request_error",
  );
}

function isJsonType(t: string | undefined): boolean {
  if (t === undefined) return true;
  const semi = t.indexOf(";");
  const base = (semi === -1 ? t : t.slice(0, semi)).trim().toLowerCase();
  return base === "application/json" || base.endsWith("+json") || base === "";
}

/** One request and its response. */
export class Exchange {
  /** Path without the query string. */
  readonly path: string;
  private readonly search: string;
  private queryCache: URLSearchParams | undefined;
  /** The parsed JSON body (routes with `body: true`). */
  body: unknown = undefined;
  /** The caller (routes with `auth: "required"`). */
  identity: Identity | undefined = undefined;
  /** LiteLLM's call id (`x-litellm-call-id`), a UUID. */
  readonly callId: string;
  /** `performance.now()` when the request arrived. */
  readonly t0: number;
  /** Set once a response has been started. */
  responded = false;
  /** The matched route. */
  route: Route | undefined = undefined;
  private chunks: Buffer[] | undefined = undefined;
  private size = 0;
  /** The upload broke or was refused: stop reading. */
  bodyFailed = false;

  constructor(
    readonly proxy: TollgateProxy,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    callId: string,
    t0: number,
  ) {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    this.path = q === -1 ? url : url.slice(0, q);
    this.search = q === -1 ? "" : url.slice(q + 1);
    this.callId = callId;
    this.t0 = t0;
  }

  /** After authentication: read the JSON body when the route wants one, then run the route. */
  afterAuth(): void {
    const route = this.route!;
    if (!route.body) {
      this.runRoute();
      return;
    }
    const req = this.req;
    const type = req.headers["content-type"];
    if (!isJsonType(type)) {
      this.fail(
        new ProxyHttpError(
          415,
          `Unsupported content-type ${JSON.stringify(type)}: send application/json`,
          "invalid_request_error",
        ),
      );
      req.resume();
      return;
    }
    const limit = this.proxy.config.maxRequestBytes;
    if (Number(req.headers["content-length"]) > limit) {
      this.fail(tooLarge(limit));
      req.resume();
      return;
    }
    this.chunks = [];
    req.on("data", onBodyData);
    req.on("end", onBodyEnd);
  }

  bodyData(chunk: Buffer, req: IncomingMessage): void {
    if (this.bodyFailed) return;
    this.size += chunk.length;
    const limit = this.proxy.config.maxRequestBytes;
    if (this.size > limit) {
      this.bodyFailed = true;
      this.chunks = undefined;
      this.fail(tooLarge(limit));
      req.resume();
      return;
    }
    this.chunks!.push(chunk);
  }

  bodyEnd(): void {
    const chunks = this.chunks;
    this.chunks = undefined;
    if (this.bodyFailed || chunks === undefined) return;
    if (this.size > 0) {
      const text = chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8");
      try {
        this.body = JSON.parse(text);
      } catch (err) {
        this.fail(
          new ProxyHttpError(
            400,
            `Invalid JSON in the request body: ${(err as Error).message}`,
            "invalid_request_error",
          ),
        );
        return;
      }
    }
    this.runRoute();
  }

  private runRoute(): void {
    let p: void | Promise<void>;
    try {
      p = this.route!.handler(this);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (p instanceof Promise) p.catch((err: unknown) => this.fail(err));
  }

  /** The request is over: drops the body and the request's link to this exchange (see `LlmCall.release`). */
  release(): void {
    this.body = undefined;
    this.chunks = undefined;
    (this.req as WithExchange)[EXCHANGE] = undefined;
  }

  get method(): string {
    return this.req.method ?? "GET";
  }

  get query(): URLSearchParams {
    if (this.queryCache === undefined) this.queryCache = new URLSearchParams(this.search);
    return this.queryCache;
  }

  /** The body as a JSON object, or a 400 when it is not one. */
  json(): Json {
    const b = this.body;
    if (typeof b !== "object" || b === null || Array.isArray(b)) {
      throw new ProxyHttpError(400, "the request body must be a JSON object", "invalid_request_error");
    }
    return b as Json;
  }

  /** Sends a JSON answer. */
  send(status: number, body: unknown, headers?: Record<string, string>): void {
    if (this.responded) return;
    this.responded = true;
    const text = typeof body === "string" ? body : JSON.stringify(body);
    const res = this.res;
    res.statusCode = status;
    res.setHeader("content-type", "application/json");
    res.setHeader("x-litellm-call-id", this.callId);
    if (headers !== undefined) for (const k in headers) res.setHeader(k, headers[k]!);
    res.end(text);
    this.proxy.metrics.request(this.proxy.metrics.routeLabel(this.path), status);
  }

  /** Answers an error in OpenAI's shape: a ProxyHttpError as it says, TollgateError bad input as 400, else 500. */
  fail(err: unknown): void {
    if (this.responded) {
      if (!this.res.writableEnded) this.res.end();
      return;
    }
    const e = toHttpError(err);
    if (e.status >= 500 && !(err instanceof ProxyHttpError)) {
      this.proxy.log.error({ callId: this.callId, err }, "request failed");
    }
    this.send(e.status, e.body(), e.headers);
  }
}

/** Maps any error to the answer it gets. */
export function toHttpError(err: unknown): ProxyHttpError {
  if (err instanceof ProxyHttpError) return err;
  if (err instanceof TollgateError) {
    if (err.code === "STORE_UNAVAILABLE" || err.code === "STORE_CLOSED") {
      return new ProxyHttpError(
        503,
        `Rate limit and budget store unavailable: ${err.message}`,
        "service_unavailable",
        null,
        { "retry-after": "1" },
      );
    }
    if (err.code.startsWith("INVALID_") || err.code === "UNKNOWN_MODEL") {
      return new ProxyHttpError(400, err.message, "invalid_request_error");
    }
  }
  return new ProxyHttpError(500, "Internal Server Error", typeForStatus(500));
}

export { errorBody };
