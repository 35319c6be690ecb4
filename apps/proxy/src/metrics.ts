/**
 * Prometheus metrics, served at `/metrics` through a prom-client registry. The per-request series are small
 * hand-rolled counters and histograms (a number array per label set, found by a precomputed key) registered as
 * prom-client custom metrics: prom-client's own `labels(...).inc()` hashes the label object on every call, which cost
 * more than the rest of the request's bookkeeping together.
 */
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { GateAdmission } from "./admission.js";

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const UPSTREAM_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Labels = Record<string, string>;

interface MetricValue {
  value: number;
  labels: Labels;
  metricName?: string;
}

/** A labelled counter; `series(...)` once per label set, then `inc` on the returned cell. */
class LightCounter {
  readonly type = "counter";
  readonly aggregator = "sum";
  private readonly cells = new Map<string, { labels: Labels; n: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  cell(key: string, labels: () => Labels): { labels: Labels; n: number } {
    let c = this.cells.get(key);
    if (c === undefined) {
      c = { labels: labels(), n: 0 };
      this.cells.set(key, c);
    }
    return c;
  }

  get() {
    const values: MetricValue[] = [];
    for (const c of this.cells.values()) values.push({ value: c.n, labels: c.labels });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

class Series {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Labels,
    buckets: number,
  ) {
    this.counts = new Float64Array(buckets);
  }
}

/** A histogram in seconds; `series(key, labels)` once per label set, then `observe(series, seconds)`. */
class LightHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly all = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: number[],
  ) {}

  series(key: string, labels: Labels): Series {
    let s = this.all.get(key);
    if (s === undefined) {
      s = new Series(labels, this.buckets.length);
      this.all.set(key, s);
    }
    return s;
  }

  observe(s: Series, v: number): void {
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        s.counts[i]!++;
        break;
      }
    }
    s.sum += v;
    s.count++;
  }

  get() {
    const values: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.all.values()) {
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i]!;
        values.push({ value: acc, labels: { le: String(this.buckets[i]), ...s.labels }, metricName: bucket });
      }
      values.push({ value: s.count, labels: { le: "+Inf", ...s.labels }, metricName: bucket });
      values.push({ value: s.sum, labels: s.labels, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: s.labels, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new LightCounter(
    "tollgate_requests_total",
    "Requests answered, by model (or route) and HTTP status",
  );
  private readonly decisionsTotal = new LightCounter(
    "tollgate_decisions_total",
    "Admission decisions by binding scope, limit type (requests, tokens, max_parallel_requests, budget) and result",
  );
  private readonly cutoffs = new LightCounter(
    "tollgate_stream_cutoffs_total",
    "Streams ended by the proxy at their output limit",
  );
  private readonly added = new LightHistogram(
    "tollgate_added_latency_seconds",
    "Time the proxy adds to a request (total minus the upstream call)",
    LATENCY_BUCKETS,
  );
  private readonly upstream = new LightHistogram(
    "tollgate_upstream_latency_seconds",
    "Upstream call duration by model",
    UPSTREAM_BUCKETS,
  );
  private readonly store = new LightHistogram(
    "tollgate_store_latency_seconds",
    "Store call duration by operation (admit, settle, fail, release)",
    LATENCY_BUCKETS,
  );
  private readonly addedSeries;
  readonly storeHealthy: Gauge;

  constructor(inflight: () => number) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: "tollgate_process_" });
    for (const m of [this.requests, this.decisionsTotal, this.cutoffs, this.added, this.upstream, this.store]) {
      r.registerMetric(m as never);
    }
    this.addedSeries = this.added.series("", {});
    this.storeHealthy = new Gauge({
      name: "tollgate_store_healthy",
      help: "1 while the rate-limit and budget store answers, 0 while degraded",
      registers: [r],
    });
    this.storeHealthy.set(1);
    new Gauge({
      name: "tollgate_inflight_requests",
      help: "LLM requests in flight",
      registers: [r],
      collect() {
        this.set(inflight());
      },
    });
  }

  /** Per model, per HTTP status: the request counter's cell (no key string or closure per request). */
  private readonly requestCells = new Map<string, Array<{ labels: Labels; n: number } | undefined>>();

  request(model: string, status: number): void {
    let byStatus = this.requestCells.get(model);
    if (byStatus === undefined) {
      byStatus = [];
      this.requestCells.set(model, byStatus);
    }
    let cell = byStatus[status];
    if (cell === undefined) {
      cell = this.requests.cell(`${model}\u0000${status}`, () => ({ model, status: String(status) }));
      byStatus[status] = cell;
    }
    cell.n++;
  }

  /** Route label for non-LLM requests. */
  routeLabel(path: string): string {
    return `route:${path.length > 64 ? path.slice(0, 64) : path}`;
  }

  private allowed: { labels: Labels; n: number } | undefined;

  decisions(a: GateAdmission): void {
    let scope: string;
    let type: string;
    if (a.ok) {
      this.allowed ??= this.decisionsTotal.cell("ok", () => ({ scope: "all", limit_type: "all", result: "allowed" }));
      this.allowed.n++;
      return;
    }
    if (a.reason === "rate_limit") {
      scope = a.denial.scope;
      type = a.denial.type;
    } else {
      scope = a.denial.budget.scope;
      type = "budget";
    }
    this.decisionsTotal.cell(`${scope}\u0000${type}`, () => ({ scope, limit_type: type, result: "denied" })).n++;
  }

  addedLatency(ms: number): void {
    this.added.observe(this.addedSeries, ms / 1000);
  }

  private readonly upstreamSeries = new Map<string, Series>();

  upstreamLatency(model: string, ms: number): void {
    let s = this.upstreamSeries.get(model);
    if (s === undefined) {
      s = this.upstream.series(model, { model });
      this.upstreamSeries.set(model, s);
    }
    this.upstream.observe(s, ms / 1000);
  }

  private readonly storeSeries = new Map<string, Series>();

  storeLatency(op: string, ms: number): void {
    let s = this.storeSeries.get(op);
    if (s === undefined) {
      s = this.store.series(op, { op });
      this.storeSeries.set(op, s);
    }
    this.store.observe(s, ms / 1000);
  }

  cutoff(): void {
    this.cutoffs.cell("", () => ({})).n++;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
