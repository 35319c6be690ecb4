/**
 * Upstream calls: one undici `Pool` (keep-alive) per origin, driven through undici's dispatch-handler interface so
 * the request path needs no streams or promises per call; the built-in `mock` provider implements the same
 * interface in-process.
 */
import { Pool } from "undici";
import type Dispatcher from "undici/types/dispatcher.js";
import type { Deployment } from "./config/load.js";
import { MockDispatcher } from "./mock.js";

export type Handler = Dispatcher.DispatchHandler;
export type Controller = Dispatcher.DispatchController;

/** What a deployment's calls need, precomputed once. */
export interface Target {
  deployment: Deployment;
  dispatcher: { dispatch(opts: Dispatcher.DispatchOptions, handler: Handler): boolean };
  /** Path prefix of the api_base (`/v1`), no trailing slash. */
  basePath: string;
  origin: string;
  /** Request headers (flat name/value list) sent on every call. */
  headers: string[];
}

/** Options of the upstream pools. */
export interface UpstreamOptions {
  /** Max connections per origin. @default 256 */
  connections?: number;
  /** Keep-alive of idle connections, ms. @default 30000 */
  keepAliveTimeoutMs?: number;
  /** Connect timeout, ms. @default 10000 */
  connectTimeoutMs?: number;
}

export class Upstreams {
  private readonly pools = new Map<string, Pool>();
  private readonly mock = new MockDispatcher();
  readonly targets = new Map<string, Target>();

  constructor(
    deployments: Deployment[],
    private readonly options: UpstreamOptions = {},
  ) {
    for (const d of deployments) this.targets.set(d.id, this.targetOf(d));
  }

  private targetOf(d: Deployment): Target {
    if (d.provider === "mock") {
      return { deployment: d, dispatcher: this.mock, basePath: "", origin: "mock://", headers: [] };
    }
    const url = new URL(d.apiBase);
    const origin = url.origin;
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.options.connections ?? 256,
        keepAliveTimeout: this.options.keepAliveTimeoutMs ?? 30_000,
        connect: { timeout: this.options.connectTimeoutMs ?? 10_000 },
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.pools.set(origin, pool);
    }
    const headers = ["content-type", "application/json", "accept", "application/json, text/event-stream"];
    if (d.apiKey !== undefined) {
      if (d.provider === "azure") headers.push("api-key", d.apiKey);
      else headers.push("authorization", `Bearer ${d.apiKey}`);
    }
    return { deployment: d, dispatcher: pool, basePath: url.pathname.replace(/\/+$/, ""), origin, headers };
  }

  /** Closes every pool (in-flight calls are aborted by their owners first). */
  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => p.destroy())));
    this.mock.close();
  }

  /** Destroys every pool at once (after the grace period). */
  async destroy(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.destroy()));
    this.mock.close();
  }
}

/** Errors that mean the request never reached the upstream (safe to retry on another deployment). */
export function isConnectionFailure(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return (
    code === "ECONNREFUSED" ||
    code === "ENOTFOUND" ||
    code === "EAI_AGAIN" ||
    code === "EHOSTUNREACH" ||
    code === "ENETUNREACH" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "ECONNRESET" ||
    code === "UND_ERR_SOCKET" ||
    code === "EPIPE"
  );
}

/** Upstream timeouts (no headers in time, or a gap between body chunks). */
export function isTimeout(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT" || code === "UND_ERR_CONNECT_TIMEOUT";
}
