/**
 * Encoders (batch -> KEYS/ARGV) and decoders (script reply -> result) for every script. Both remote stores
 * (Redis, Upstash) go through these, so the wire format of a script is defined in exactly one place, next
 * to the KEYS/ARGV header of the script itself.
 */
import {
  type AdjustBatch,
  type AdjustResult,
  type AdmitBatch,
  type AdmitResult,
  type CounterState,
  type GaugeState,
  type LeaseRef,
  type ReadQuery,
  type ReadResult,
  TollgateError,
  type WindowState,
} from "@tollgate/core";
import { gaugeKey, holdKeys, pushCounterKeys, windowKey } from "./keys.js";
import { ADJUST_SCRIPT, ADMIT_SCRIPT, type LuaScript, READ_SCRIPT, RENEW_SCRIPT } from "./scripts.js";

/** One script invocation: what EVALSHA/EVAL receive. */
export interface ScriptCall {
  script: LuaScript;
  keys: string[];
  args: string[];
}

/** Options shared by the encoders. */
export interface EncodeOptions {
  /** Key prefix placed before the braces, e.g. `"tollgate:"`. */
  prefix: string;
  /** Testing only: the clock in ms the script uses instead of server TIME. @default undefined (server TIME) */
  testNowMs?: number;
}

const clockArg = (opts: EncodeOptions): string => (opts.testNowMs === undefined ? "" : String(opts.testNowMs));

const flag = (b: boolean): string => (b ? "1" : "0");

/** The keys of a lease's entries, as `adjust` (release) and `renew` expect them: gauges, then holds/held pairs. */
function pushLeaseKeys(keys: string[], prefix: string, lease: LeaseRef): void {
  for (const g of lease.gauges) keys.push(gaugeKey(prefix, g.key, g.name));
  for (const h of lease.holds) {
    const [holds, held] = holdKeys(prefix, h.key, h.name);
    keys.push(holds, held);
  }
}

/** Encodes an admission for {@link ADMIT_SCRIPT}. The batch must already be validated. */
export function encodeAdmit(batch: AdmitBatch, opts: EncodeOptions): ScriptCall {
  const { prefix } = opts;
  const keys: string[] = [];
  const lease = batch.lease;
  const args: string[] = [
    clockArg(opts),
    lease ? lease.id : "",
    lease ? String(lease.ttlMs) : "0",
    String(batch.windows.length),
    String(batch.gauges.length),
  ];
  for (const w of batch.windows) {
    keys.push(windowKey(prefix, w.key));
    const sliding = w.algorithm === "sliding";
    args.push(String(w.windowMs), flag(sliding), String(w.counters.length));
    for (const c of w.counters) {
      pushCounterKeys(keys, prefix, w.key, c.name, sliding, true);
      args.push(String(c.limit), String(c.amount), String(c.hold ?? 0), flag(c.enforce));
    }
  }
  for (const g of batch.gauges) {
    keys.push(gaugeKey(prefix, g.key, g.name));
    args.push(String(g.limit), flag(g.enforce));
  }
  return { script: ADMIT_SCRIPT, keys, args };
}

/** Encodes an adjustment (deltas and/or release) for {@link ADJUST_SCRIPT}. */
export function encodeAdjust(batch: AdjustBatch, opts: EncodeOptions): ScriptCall {
  const { prefix } = opts;
  const keys: string[] = [];
  const rel = batch.release;
  const readBack = batch.readBack !== false;
  const args: string[] = [
    clockArg(opts),
    rel ? rel.id : "",
    String(batch.windows.length),
    String(rel ? rel.gauges.length : 0),
    String(rel ? rel.holds.length : 0),
    flag(readBack),
  ];
  for (const w of batch.windows) {
    keys.push(windowKey(prefix, w.key));
    const guarded = w.expectStart !== undefined;
    const sliding = w.algorithm === "sliding";
    args.push(
      String(w.windowMs),
      flag(sliding),
      flag(guarded),
      guarded ? String(w.expectStart) : "0",
      String(w.counters.length),
    );
    for (const c of w.counters) {
      pushCounterKeys(keys, prefix, w.key, c.name, sliding, readBack);
      args.push(String(c.delta));
    }
  }
  if (rel) pushLeaseKeys(keys, prefix, rel);
  return { script: ADJUST_SCRIPT, keys, args };
}

/** Encodes a lease renewal for {@link RENEW_SCRIPT}. */
export function encodeRenew(lease: LeaseRef, ttlMs: number, opts: EncodeOptions): ScriptCall {
  const { prefix } = opts;
  const keys: string[] = [];
  pushLeaseKeys(keys, prefix, lease);
  const args = [clockArg(opts), lease.id, String(ttlMs), String(lease.gauges.length), String(lease.holds.length)];
  return { script: RENEW_SCRIPT, keys, args };
}

/** Encodes a read for {@link READ_SCRIPT}. */
export function encodeRead(query: ReadQuery, opts: EncodeOptions): ScriptCall {
  const { prefix } = opts;
  const keys: string[] = [];
  const args: string[] = [clockArg(opts), String(query.windows.length), String(query.gauges.length)];
  for (const w of query.windows) {
    keys.push(windowKey(prefix, w.key));
    const sliding = w.algorithm === "sliding";
    args.push(String(w.windowMs), flag(sliding), String(w.counters.length));
    for (const name of w.counters) pushCounterKeys(keys, prefix, w.key, name, sliding, true);
  }
  for (const g of query.gauges) keys.push(gaugeKey(prefix, g.key, g.name));
  return { script: READ_SCRIPT, keys, args };
}

/** Sequential reader over a flat integer reply; rejects anything that is not the expected shape. */
class Reply {
  private i = 0;
  private readonly a: unknown[];

  constructor(
    private readonly script: string,
    reply: unknown,
  ) {
    if (!Array.isArray(reply)) throw badReply(script, "not an array");
    this.a = reply;
  }

  next(): number {
    const raw = this.a[this.i++];
    const n = typeof raw === "number" ? raw : typeof raw === "string" ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(n)) throw badReply(this.script, `element ${this.i - 1} is ${JSON.stringify(raw)}`);
    return n;
  }

  end(): void {
    if (this.i !== this.a.length) throw badReply(this.script, `expected ${this.i} elements, got ${this.a.length}`);
  }
}

function badReply(script: string, why: string): TollgateError {
  return new TollgateError("STORE_DATA_CORRUPT", `unexpected reply from the ${script} script: ${why}`);
}

function readWindow(r: Reply, counters: number): WindowState {
  const start = r.next();
  const states: CounterState[] = new Array(counters);
  for (let c = 0; c < counters; c++) states[c] = { value: r.next(), previous: r.next(), held: r.next() };
  return { start, counters: states };
}

function readGauge(r: Reply): GaugeState {
  const inFlight = r.next();
  const e = r.next();
  return { inFlight, earliestExpiry: e < 0 ? null : e };
}

/** Decodes the reply of {@link ADMIT_SCRIPT} for `batch`. */
export function decodeAdmit(batch: AdmitBatch, reply: unknown): AdmitResult {
  const r = new Reply("admit", reply);
  const admitted = r.next() === 1;
  const now = r.next();
  const kind = r.next();
  const a = r.next();
  const b = r.next();
  const windows = batch.windows.map((w) => readWindow(r, w.counters.length));
  const gauges = batch.gauges.map(() => readGauge(r));
  r.end();
  const result: AdmitResult = { admitted, now, windows, gauges };
  if (kind === 1) result.denied = { type: "counter", window: a, counter: b };
  else if (kind === 2) result.denied = { type: "gauge", gauge: a };
  return result;
}

/** Decodes the reply of {@link ADJUST_SCRIPT} for `batch` (`windows: []` without read-back). */
export function decodeAdjust(batch: AdjustBatch, reply: unknown): AdjustResult {
  const r = new Reply("adjust", reply);
  const now = r.next();
  const released = r.next();
  const readBack = batch.readBack !== false;
  const applied: boolean[] = new Array(batch.windows.length);
  const windows: WindowState[] = readBack ? new Array(batch.windows.length) : [];
  batch.windows.forEach((w, i) => {
    applied[i] = r.next() === 1;
    if (readBack) windows[i] = readWindow(r, w.counters.length);
  });
  r.end();
  return { now, applied, windows, released };
}

/** Decodes the reply of {@link RENEW_SCRIPT}: the number of entries renewed. */
export function decodeRenew(reply: unknown): number {
  const r = new Reply("renew", reply);
  r.next();
  const renewed = r.next();
  r.end();
  return renewed;
}

/** Decodes the reply of {@link READ_SCRIPT} for `query`. */
export function decodeRead(query: ReadQuery, reply: unknown): ReadResult {
  const r = new Reply("read", reply);
  const now = r.next();
  const windows = query.windows.map((w) => readWindow(r, w.counters.length));
  const gauges = query.gauges.map(() => readGauge(r));
  r.end();
  return { now, windows, gauges };
}
