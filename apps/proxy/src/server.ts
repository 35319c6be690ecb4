/**
 * The proxy: a plain `node:http` server, a route table, the store and the gate, model groups and upstream pools.
 * `createProxy(config)` builds it; `listen()` starts it; `close()` drains it (SIGTERM).
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, Server as NetServer } from "node:net";
import {
  type BudgetSpec,
  type BudgetStatus,
  type Budgets,
  createBudgets,
  createPriceBook,
  DEFAULT_PRICES,
  type ModelPrice,
  type ModelPriceInput,
  type PriceTable,
} from "@tollgate/budgets";
import { type CounterStore, createLimiter, type Descriptor, type Limiter } from "@tollgate/core";
import pino, { type Logger } from "pino";
import { Gauge } from "prom-client";
import { createAdmission, type Gate } from "./admission.js";
import { type CallKind, LlmCall } from "./call.js";
import type { ProxyConfig } from "./config/load.js";
import { ProxyHttpError } from "./errors.js";
import { EXCHANGE, Exchange, onRequestError, RouteTable, toHttpError } from "./exchange.js";
import {
  type Authenticator,
  type EndUserPolicy,
  type EndUserResolver,
  type Identity,
  masterKeyAuthenticator,
  tokenOf,
} from "./identity.js";
import { Metrics } from "./metrics.js";
import { ModelGroup } from "./routing.js";
import { SpendHooks } from "./spend.js";
import { createStore, type StoreHandle } from "./store.js";
import { Upstreams } from "./upstream.js";

export const VERSION = "0.1.0";

/** Options of {@link createProxy}. */
export interface ProxyOptions {
  /** A store to use instead of the one the config describes (tests, embedding). Not closed by the proxy. */
  store?: CounterStore;
  /** Replaces the master-key authenticator (the management API plugs virtual keys here). */
  authenticator?: Authenticator;
  /** Replaces the config's end-user policy (`max_end_user_budget`). */
  endUsers?: EndUserResolver;
  /** A pino logger. @default pino at LOG_LEVEL / LITELLM_LOG (info) on stdout */
  logger?: Logger;
  /** Injected wall clock (ms) for routing hints. @default Date.now */
  now?: () => number;
}

/** Something mounted on the proxy for its lifetime (e.g. the management API and its database). */
export interface ProxyExtension {
  name: string;
  /** Called before the server listens: register routes, set the authenticator, add spend listeners. */
  start?(proxy: TollgateProxy): void | Promise<void>;
  /** Called at shutdown after in-flight requests finished and spend listeners flushed. */
  stop?(): void | Promise<void>;
  /** Lines for the start-up message (after `start`), e.g. `  database:   sqlite /path/tollgate.db`. */
  describe?(): string[];
}

export class TollgateProxy {
  readonly config: ProxyConfig;
  readonly routes = new RouteTable();
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly spend: SpendHooks;
  readonly inflight = new Set<LlmCall>();
  readonly groups = new Map<string, ModelGroup>();
  /** Prices per public model name. */
  readonly prices = new Map<string, ModelPrice>();
  readonly globalBudgets: BudgetSpec[] = [];
  readonly maxResponseBytes = 64 * 1024 * 1024;
  gate!: Gate;
  authenticator: Authenticator;
  endUsers: EndUserResolver;
  readonly now: () => number;
  private readonly server: Server;
  private readonly upstreams: Upstreams;
  private readonly deploymentLimits = new Map<string, Descriptor>();
  private storeHandle: StoreHandle | undefined;
  private store: CounterStore | undefined;
  private readonly extensions: ProxyExtension[] = [];
  private closing: Promise<void> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  shuttingDown = false;
  /** Set when the drain after a SIGTERM is over: requests still arriving get 503. */
  private drainOver = false;

  constructor(
    config: ProxyConfig,
    private readonly options: ProxyOptions = {},
  ) {
    this.config = config;
    this.now = options.now ?? Date.now;
    this.log =
      options.logger ??
      pino({ level: logLevel(), base: { service: "tollgate" }, timestamp: pino.stdTimeFunctions.isoTime });
    this.metrics = new Metrics(() => this.inflight.size);
    this.spend = new SpendHooks(this.log);
    this.authenticator = options.authenticator ?? masterKeyAuthenticator(config.masterKey);
    this.endUsers = options.endUsers ?? configEndUsers(config);
    this.upstreams = new Upstreams(config.deployments);
    this.buildGroups();
    if (config.maxBudget !== null) {
      this.globalBudgets.push({
        scope: "global",
        id: "proxy",
        maxBudget: config.maxBudget,
        duration: config.budgetDuration,
      });
    }
    this.server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => this.onRequest(req, res));
    this.server.on("clientError", (err, socket) => {
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
      else socket.destroy(err);
    });
    this.registerBuiltins();
  }

  private buildGroups(): void {
    const byName = new Map<string, Array<ReturnType<Upstreams["targets"]["get"]>>>();
    for (const d of this.config.deployments) {
      const list = byName.get(d.modelName) ?? [];
      list.push(this.upstreams.targets.get(d.id));
      byName.set(d.modelName, list);
      if (d.rpm !== undefined || d.tpm !== undefined || d.maxParallel !== undefined) {
        this.deploymentLimits.set(d.id, {
          scope: "deployment",
          value: d.id,
          requests: d.rpm,
          tokens: d.tpm,
          maxParallel: d.maxParallel,
          windowMs: 60_000,
          ...(this.config.tokenRateLimitType === "total" ? {} : { tokenType: this.config.tokenRateLimitType }),
        });
      }
    }
    // prices per public model name: the base table's entry for the provider model, overridden by the deployment
    const table: PriceTable = {};
    for (const [name, targets] of byName) {
      this.groups.set(
        name,
        new ModelGroup(
          name,
          targets.map((t) => t!),
        ),
      );
      let chosen: ModelPriceInput | undefined;
      for (const t of targets) {
        const d = t!.deployment;
        const slash = d.litellmModel.lastIndexOf("/");
        const base = DEFAULT_PRICES[d.litellmModel] ?? DEFAULT_PRICES[d.litellmModel.slice(slash + 1)];
        const entry: Partial<ModelPriceInput> = { ...base };
        if (d.inputCostPerToken !== undefined) entry.input_cost_per_token = d.inputCostPerToken;
        if (d.outputCostPerToken !== undefined) entry.output_cost_per_token = d.outputCostPerToken;
        if (d.maxOutputTokens !== undefined) entry.max_output_tokens = d.maxOutputTokens;
        if (d.mode !== undefined) entry.mode = d.mode;
        if (entry.input_cost_per_token === undefined) continue;
        // several deployments of one group with different prices: hold and charge the highest
        if (chosen === undefined || higher(entry as ModelPriceInput, chosen)) chosen = entry as ModelPriceInput;
      }
      if (chosen !== undefined) table[name] = chosen;
    }
    const book = createPriceBook(table);
    for (const name of Object.keys(table)) this.prices.set(name, book.get(name)!);
    this.priceTable = table;
  }

  private priceTable: PriceTable = {};

  /** The rate-limit descriptor of a deployment's rpm/tpm (scope `deployment`), if it has limits. */
  deploymentDescriptor(id: string): Descriptor | undefined {
    return this.deploymentLimits.get(id);
  }

  /** Whether an allow-list grants a model (names, access groups, `*`). */
  modelAllowed(models: readonly string[], model: string): boolean {
    if (models.length === 0) return true; // LiteLLM: an empty list means every model
    for (const m of models) {
      if (m === model || m === "*" || m === "all-proxy-models") return true;
    }
    const group = this.groups.get(model);
    if (group !== undefined) {
      for (const t of group.targets) for (const g of t.deployment.accessGroups) if (models.includes(g)) return true;
    }
    return false;
  }

  /** Adds an extension (before `listen`). */
  use(ext: ProxyExtension): this {
    this.extensions.push(ext);
    return this;
  }

  private registerBuiltins(): void {
    const r = this.routes;
    const llm = (kind: CallKind) => (ex: Exchange) => new LlmCall(ex, kind).run();
    for (const prefix of ["", "/v1", "/openai"]) {
      r.add("POST", `${prefix}/chat/completions`, llm("chat"));
      r.add("POST", `${prefix}/completions`, llm("completion"));
      r.add("POST", `${prefix}/embeddings`, llm("embedding"));
    }
    const models = (ex: Exchange) => {
      const id = ex.identity!;
      const created = Math.floor(this.startedAt / 1000);
      const data = [...this.groups.keys()]
        .filter((m) => id.models === null || this.modelAllowed(id.models, m))
        .map((m) => ({ id: m, object: "model", created, owned_by: "openai" }));
      ex.send(200, { data, object: "list" });
    };
    r.add("GET", "/models", models);
    r.add("GET", "/v1/models", models);
    const alive = (ex: Exchange) => ex.send(200, JSON.stringify("I'm alive!"));
    r.add("GET", "/health/liveliness", alive, { auth: "none" });
    r.add("GET", "/health/liveness", alive, { auth: "none" });
    r.add("GET", "/health/readiness", (ex) => this.readiness(ex), { auth: "none" });
    r.add(
      "GET",
      "/metrics",
      async (ex) => {
        const text = await this.metrics.text();
        ex.responded = true;
        ex.res.writeHead(200, { "content-type": this.metrics.contentType });
        ex.res.end(text);
      },
      { auth: "none" },
    );
    r.add("GET", "/tollgate/status", (ex) => this.status(ex));
    r.add("GET", "/", (ex) => ex.send(200, { message: "Tollgate proxy: OpenAI-compatible, see /v1/models" }), {
      auth: "none",
    });
  }

  private startedAt = Date.now();

  /** `tollgate_budget_spend_usd` / `tollgate_budget_remaining_usd` of the configured (global) budget, read at scrape. */
  private budgetGauges(): void {
    const specs = this.globalBudgets;
    if (specs.length === 0) return;
    const reader = this.reader!;
    const log = this.log;
    // one store read per scrape, shared by both gauges (prom-client collects them concurrently)
    let last: { at: number; p: Promise<BudgetStatus[]> } | undefined;
    const read = () => {
      const now = Date.now();
      if (last === undefined || now - last.at > 250) last = { at: now, p: reader.budgets.status(specs) };
      return last.p;
    };
    const gauge = (name: string, help: string, value: (b: BudgetStatus) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ["scope", "id"],
        registers: [this.metrics.registry],
        async collect() {
          try {
            for (const b of await read()) {
              const v = value(b);
              if (v !== undefined) this.set({ scope: b.budget.scope, id: b.budget.id }, v / 1e9);
            }
          } catch (err) {
            log.warn({ err }, "budget metrics unavailable");
          }
        },
      });
    gauge("tollgate_budget_spend_usd", "Spend in the current period of the configured budgets", (b) => b.spend);
    gauge(
      "tollgate_budget_remaining_usd",
      "Budget left in the current period of the configured budgets (spend and holds deducted)",
      (b) => (b.max === null ? undefined : Math.max(0, b.max - b.spend - b.reserved)),
    );
  }
  private reader: { limiter: Limiter; budgets: Budgets } | undefined;

  /** Read-only views of the store's counters (`/tollgate/status`, the UI's live limits); exists once listening. */
  get statusReader(): { limiter: Limiter; budgets: Budgets } {
    if (this.reader === undefined) throw new Error("the proxy is not listening yet");
    return this.reader;
  }

  /**
   * `GET /tollgate/status` (master key): current counters of the deployments' limits and of the global budget, and of
   * an end user's budget with `?end_user=<id>`. Read-only; amounts in USD and nano-USD.
   */
  private async status(ex: Exchange): Promise<void> {
    if (ex.identity?.role !== "proxy_admin") {
      throw new ProxyHttpError(403, "only the master key (proxy_admin) may read /tollgate/status", "auth_error");
    }
    const reader = this.reader!;
    const deployments = [];
    for (const d of this.config.deployments) {
      const dd = this.deploymentLimits.get(d.id);
      deployments.push({
        id: d.id,
        model_name: d.modelName,
        limits: dd === undefined ? [] : await reader.limiter.status([dd]),
      });
    }
    const specs: BudgetSpec[] = [...this.globalBudgets];
    const endUser = ex.query.get("end_user");
    if (endUser !== null && endUser !== "") {
      const p = await this.endUsers.resolve(endUser, ex.identity);
      specs.push(...p.budgets);
    }
    const budgets = (await reader.budgets.status(specs)).map((b) => ({
      ...b,
      spend_usd: b.spend / 1e9,
      reserved_usd: b.reserved / 1e9,
      max_usd: b.max === null ? null : b.max / 1e9,
    }));
    ex.send(200, { deployments, budgets, inflight: this.inflight.size });
  }

  private readiness(ex: Exchange): void {
    const health = this.storeHandle?.health() ?? "healthy";
    const ok = health === "healthy" && !this.shuttingDown;
    ex.send(ok ? 200 : 503, {
      status: ok ? "healthy" : "unhealthy",
      db: this.config.databaseUrl === null ? "Not connected" : "connected",
      cache: this.config.store.type,
      store: health,
      shutting_down: this.shuttingDown,
      tollgate_version: VERSION,
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const ex = new Exchange(this, req, res, randomUUID(), performance.now());
    req.on("error", onRequestError);
    (req as IncomingMessage & { [EXCHANGE]?: Exchange })[EXCHANGE] = ex;
    if (this.shuttingDown) {
      // Draining: a request that arrives on a connection opened before the SIGTERM is served, and its connection
      // closed after the answer; once the drain is over, anything left gets 503.
      res.setHeader("connection", "close");
      if (this.drainOver) {
        ex.fail(
          new ProxyHttpError(503, "The proxy is shutting down", "service_unavailable", null, { "retry-after": "1" }),
        );
        return;
      }
    }
    const method = req.method ?? "GET";
    const route = this.routes.get(method, ex.path);
    if (route === undefined) {
      if (this.routes.hasPath(ex.path)) {
        ex.fail(new ProxyHttpError(405, `Method ${method} not allowed on ${ex.path}`, "invalid_request_error"));
      } else ex.fail(new ProxyHttpError(404, `Not found: ${method} ${ex.path}`, "invalid_request_error"));
      return;
    }
    ex.route = route;
    if (route.auth === "none") {
      ex.afterAuth();
      return;
    }
    let identity: Identity | Promise<Identity>;
    try {
      identity = this.authenticator.authenticate(tokenOf(req), req);
    } catch (err) {
      ex.fail(err);
      req.resume();
      return;
    }
    if (identity instanceof Promise) {
      identity.then(
        (id) => {
          ex.identity = id;
          ex.afterAuth();
        },
        (err: unknown) => {
          ex.fail(err);
          req.resume();
        },
      );
      return;
    }
    ex.identity = identity;
    ex.afterAuth();
  }

  /** Creates the store (unless injected), the gate, starts extensions, and listens. */
  async listen(port = 4000, host = "0.0.0.0"): Promise<AddressInfo> {
    if (this.options.store !== undefined) this.store = this.options.store;
    else {
      this.storeHandle = createStore(this.config.store, (state, cause) => {
        this.metrics.storeHealthy.set(state === "healthy" ? 1 : 0);
        this.log.warn({ state, cause: cause?.message }, "store health changed");
      });
      this.store = this.storeHandle.store;
    }
    this.reader = {
      limiter: createLimiter({ store: this.store, leaseTtlMs: this.config.leaseTtlMs }),
      budgets: createBudgets({ store: this.store, prices: this.priceTable, unknownModel: "allow" }),
    };
    this.budgetGauges();
    this.gate = createAdmission({
      store: this.store,
      leaseTtlMs: this.config.leaseTtlMs,
      tokenType: this.config.tokenRateLimitType,
      mode: this.config.budgetMode,
      shrink: this.config.shrinkMaxTokens,
      prices: this.priceTable,
    });
    for (const ext of this.extensions) await ext.start?.(this);
    const every = Math.max(1000, Math.floor(this.config.leaseTtlMs / 3));
    this.renewTimer = setInterval(() => this.renewAll(every), every);
    this.renewTimer.unref();
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  private drainWaiters: Array<() => void> = [];

  /** Called by a call once it is completely over (response ended, ticket finished). */
  callEnded(call: LlmCall): void {
    this.inflight.delete(call);
    if (this.inflight.size === 0 && this.drainWaiters.length > 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves when no LLM call is in flight. */
  private drained(): Promise<void> {
    if (this.inflight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** One timer for every in-flight ticket: renews those older than a third of the lease TTL. */
  private renewAll(every: number): void {
    const now = Date.now();
    for (const call of this.inflight) {
      const t = call.openTicket;
      if (t === undefined) continue;
      const last = call.lastRenew || call.startedAt;
      if (now - last < every) continue;
      call.lastRenew = now;
      t.renew().catch((err: unknown) => this.log.warn({ callId: call.callId, err }, "lease renewal failed"));
    }
  }

  /** The counter store (after `listen` started it); extensions use it, e.g. to restore budget counters. */
  get counterStore(): CounterStore | undefined {
    return this.store;
  }

  get address(): AddressInfo | null {
    return this.server.address() as AddressInfo | null;
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish within `graceMs` (then abort their upstream
   * calls: they fail and refund), flush spend listeners, stop extensions, close the store.
   */
  close(graceMs = this.config.shutdownGraceMs): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.shuttingDown = true;
    this.closing = (async () => {
      // Stop accepting connections but keep the open ones while in-flight requests finish: a request already sent on
      // a kept-alive connection (a load balancer that has not yet taken this instance out) is served with
      // `connection: close` instead of being cut off. (http.Server#close would close idle connections at once.)
      const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(this.server, () => resolve()));
      const drained = this.drained();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        drained.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.log.warn({ inflight: this.inflight.size }, "grace period over: cancelling in-flight requests");
        for (const c of this.inflight) c.abortForShutdown();
        await Promise.race([this.drained(), new Promise((r) => setTimeout(r, 5000).unref())]);
      }
      this.drainOver = true;
      clearInterval(this.renewTimer);
      this.server.close(); // clears http's connection-check timer; the listener is already closed
      this.server.closeAllConnections();
      await closed;
      await this.spend.flush();
      for (const ext of [...this.extensions].reverse()) {
        try {
          await ext.stop?.();
        } catch (err) {
          this.log.error({ err, extension: ext.name }, "extension stop failed");
        }
      }
      await this.upstreams.destroy();
      await this.storeHandle?.close();
    })();
    return this.closing;
  }
}

function higher(a: ModelPriceInput, b: ModelPriceInput): boolean {
  return (
    Number(a.output_cost_per_token ?? 0) + Number(a.input_cost_per_token) >
    Number(b.output_cost_per_token ?? 0) + Number(b.input_cost_per_token)
  );
}

function logLevel(): string {
  const l = (process.env.LOG_LEVEL ?? process.env.LITELLM_LOG ?? "info").toLowerCase();
  return ["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(l)
    ? l
    : l === "warning"
      ? "warn"
      : "info";
}

/** Without a database: each end user gets `max_end_user_budget` (never resets), no rate limits. */
function configEndUsers(config: ProxyConfig): EndUserResolver {
  const none: EndUserPolicy = { limits: [], budgets: [] };
  const max = config.maxEndUserBudget;
  if (max === null) return { resolve: () => none };
  return {
    resolve(id) {
      return { limits: [], budgets: [{ scope: "end_user", id, maxBudget: max, duration: null }] };
    },
  };
}

/** Creates a proxy for a loaded config. */
export function createProxy(config: ProxyConfig, options?: ProxyOptions): TollgateProxy {
  return new TollgateProxy(config, options);
}

export { toHttpError };
