/**
 * Prometheus metrics (prom-client), served at `/metrics`. Label children are cached so that a request costs a few
 * map lookups, not label hashing.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { GateAdmission } from "./admission.js";

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const UPSTREAM_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"model" | "status">;
  private readonly decisionsTotal: Counter<"scope" | "limit_type" | "result">;
  private readonly added: Histogram;
  private readonly upstream: Histogram<"model">;
  private readonly store: Histogram<"op">;
  readonly storeHealthy: Gauge;
  readonly budgetSpend: Gauge<"scope" | "id">;
  readonly budgetRemaining: Gauge<"scope" | "id">;
  private readonly cutoffs: Counter;
  private readonly inflightGauge: Gauge;
  private readonly children = new Map<string, { inc(): void }>();
  private readonly upstreamChildren = new Map<string, { observe(v: number): void }>();
  private readonly storeChildren = new Map<string, { observe(v: number): void }>();

  constructor(inflight: () => number) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: "tollgate_process_" });
    this.requests = new Counter({
      name: "tollgate_requests_total",
      help: "Requests answered, by model (or route) and HTTP status",
      labelNames: ["model", "status"],
      registers: [r],
    });
    this.decisionsTotal = new Counter({
      name: "tollgate_decisions_total",
      help: "Admission decisions by binding scope, limit type (requests, tokens, max_parallel_requests, budget) and result",
      labelNames: ["scope", "limit_type", "result"],
      registers: [r],
    });
    this.added = new Histogram({
      name: "tollgate_added_latency_seconds",
      help: "Time the proxy adds to a request (total minus the upstream call)",
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.upstream = new Histogram({
      name: "tollgate_upstream_latency_seconds",
      help: "Upstream call duration by model",
      labelNames: ["model"],
      buckets: UPSTREAM_BUCKETS,
      registers: [r],
    });
    this.store = new Histogram({
      name: "tollgate_store_latency_seconds",
      help: "Store call duration by operation (admit, settle, fail, release)",
      labelNames: ["op"],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.storeHealthy = new Gauge({
      name: "tollgate_store_healthy",
      help: "1 while the rate-limit and budget store answers, 0 while degraded",
      registers: [r],
    });
    this.storeHealthy.set(1);
    this.budgetSpend = new Gauge({
      name: "tollgate_budget_spend_usd",
      help: "Spend in the current period of configured budgets (global)",
      labelNames: ["scope", "id"],
      registers: [r],
    });
    this.budgetRemaining = new Gauge({
      name: "tollgate_budget_remaining_usd",
      help: "Budget left in the current period of configured budgets (global)",
      labelNames: ["scope", "id"],
      registers: [r],
    });
    this.cutoffs = new Counter({
      name: "tollgate_stream_cutoffs_total",
      help: "Streams ended by the proxy at their output limit",
      registers: [r],
    });
    this.inflightGauge = new Gauge({
      name: "tollgate_inflight_requests",
      help: "LLM requests in flight",
      registers: [r],
      collect() {
        this.set(inflight());
      },
    });
  }

  request(model: string, status: number): void {
    const key = `r\u0000${model}\u0000${status}`;
    let c = this.children.get(key);
    if (c === undefined) {
      c = this.requests.labels(model, String(status));
      this.children.set(key, c);
    }
    c.inc();
  }

  /** Route label for non-LLM requests (bounded: only known paths). */
  routeLabel(path: string): string {
    return `route:${path.length > 64 ? path.slice(0, 64) : path}`;
  }

  decisions(a: GateAdmission): void {
    let key: string;
    let scope: string;
    let type: string;
    let result: string;
    if (a.ok) {
      scope = "all";
      type = "all";
      result = "allowed";
    } else if (a.reason === "rate_limit") {
      scope = a.denial.scope;
      type = a.denial.type;
      result = "denied";
    } else {
      scope = a.denial.budget.scope;
      type = "budget";
      result = "denied";
    }
    key = `d\u0000${scope}\u0000${type}\u0000${result}`;
    let c = this.children.get(key);
    if (c === undefined) {
      c = this.decisionsTotal.labels(scope, type, result);
      this.children.set(key, c);
    }
    c.inc();
  }

  addedLatency(ms: number): void {
    this.added.observe(ms / 1000);
  }

  upstreamLatency(model: string, ms: number): void {
    let c = this.upstreamChildren.get(model);
    if (c === undefined) {
      c = this.upstream.labels(model);
      this.upstreamChildren.set(model, c);
    }
    c.observe(ms / 1000);
  }

  storeLatency(op: string, ms: number): void {
    let c = this.storeChildren.get(op);
    if (c === undefined) {
      c = this.store.labels(op);
      this.storeChildren.set(op, c);
    }
    c.observe(ms / 1000);
  }

  cutoff(): void {
    this.cutoffs.inc();
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Count of registered series, for tests. */
  get inflight(): Gauge {
    return this.inflightGauge;
  }
}
