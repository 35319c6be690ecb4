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
  type TicketState,
  TollgateError,
  type WindowSpec,
  type WindowState,
} from "@tollgate/core";
import { gaugeKey, holdKeys, pushCounterKeys, pushHoldKeys, windowKey } from "./keys.js";
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

/** A non-negative integer as the scripts read it: base 36 (see the prelude). */
const b36 = (n: number): string => n.toString(36);

const clockArg = (opts: EncodeOptions): string => (opts.testNowMs === undefined ? "" : b36(opts.testNowMs));

/** Counters per window the packed window argument has room for. */
const MAX_COUNTERS = 64;
/** Longest window the packed window argument has room for: 2^43 ms, about 278 years. */
const MAX_WINDOW_MS = 2 ** 43;

function tooLarge(what: string): TollgateError {
  return new TollgateError("INVALID_ARGUMENT", `the Redis scripts cannot encode ${what}`);
}

/** The packed description of a window: `1024 × windowMs + low`, where low packs counters and flags. */
function packWindow(w: { key: string; windowMs: number }, counters: number, low: number): string {
  if (counters >= MAX_COUNTERS) throw tooLarge(`${counters} counters in window ${w.key} (at most ${MAX_COUNTERS - 1})`);
  if (w.windowMs >= MAX_WINDOW_MS) throw tooLarge(`windowMs ${w.windowMs} of ${w.key} (below 2^43)`);
  return b36(w.windowMs * 1024 + low);
}

/** A limit as the admission reads it: `limit + 1`, 0 when not enforced. */
const limitArg = (limit: number, enforce: boolean): string => (enforce ? b36(limit + 1) : "0");

/** A signed delta, zigzag-encoded: `2d` for d ≥ 0, `-2d - 1` below. */
function deltaArg(d: number): string {
  if (Math.abs(d) >= 2 ** 52) throw tooLarge(`a delta of ${d} (|delta| below 2^52)`);
  return b36(d >= 0 ? 2 * d : -2 * d - 1);
}

/** The keys of a lease's entries, as `adjust` (release) and `renew` expect them: gauges, then holds/held pairs. */
function pushLeaseKeys(keys: string[], prefix: string, lease: LeaseRef): void {
  for (const g of lease.gauges) keys.push(gaugeKey(prefix, g.key, g.name));
  for (const h of lease.holds) {
    const [holds, held] = holdKeys(prefix, h.key, h.name);
    keys.push(holds, held);
  }
}

/** The ticket an admission records: its key and how long it lives (ms). */
export interface AdmitTicket {
  key: string;
  ttlMs: number;
}

/**
 * The ticket of an adjustment: its key, what to do (`settle`, `release`, or the store-internal `discard`: undo an
 * admission known to be applied and forget the ticket), and how long the finished mark lives (ms).
 */
export interface AdjustTicket {
  key: string;
  mode: "settle" | "release" | "discard";
  keepMs: number;
  /**
   * Compensations of an admission whose answer is unknown: every window is guarded by the ticket instead of a
   * start (apply to the window the ticket's admission applied to, i.e. current and started no later than it).
   */
  guardByTicket?: boolean;
}

const TICKET_MODE = { settle: 1, release: 2, discard: 3 } as const;

/**
 * Encodes an admission for {@link ADMIT_SCRIPT}. The batch must already be validated. With `ticket`, the script
 * refuses the batch when that ticket is finished and records it as open when admitted.
 */
export function encodeAdmit(batch: AdmitBatch, opts: EncodeOptions, ticket?: AdmitTicket): ScriptCall {
  const { prefix } = opts;
  const keys: string[] = [];
  const hkeys: string[] = [];
  const lease = batch.lease;
  if (ticket) keys.push(ticket.key);
  if (batch.windows.length >= 65536 || batch.gauges.length >= 65536) throw tooLarge("65,536 windows or gauges");
  const args: string[] = [
    clockArg(opts),
    lease ? lease.id : "",
    lease ? b36(lease.ttlMs) : "0",
    ticket ? b36(ticket.ttlMs) : "0",
    b36(batch.windows.length * 65536 + batch.gauges.length),
  ];
  for (const w of batch.windows) {
    keys.push(windowKey(prefix, w.key));
    const sliding = w.algorithm === "sliding";
    const holds = w.noHolds !== true;
    const n = w.counters.length;
    args.push(packWindow(w, n, 4 * n + (sliding ? 1 : 0) + (holds ? 2 : 0)));
    for (const c of w.counters) {
      pushCounterKeys(keys, prefix, w.key, c.name, sliding, false);
      args.push(limitArg(c.limit, c.enforce), b36(c.amount));
      if (holds) {
        pushHoldKeys(hkeys, prefix, w.key, c.name);
        args.push(b36(c.hold ?? 0));
      }
    }
  }
  for (const k of hkeys) keys.push(k);
  for (const g of batch.gauges) {
    keys.push(gaugeKey(prefix, g.key, g.name));
    args.push(limitArg(g.limit, g.enforce));
  }
  return { script: ADMIT_SCRIPT, keys, args };
}

/**
 * Encodes an adjustment (deltas and/or release) for {@link ADJUST_SCRIPT}. Without read-back, a guarded window's
 * counters with a delta of 0 are left out (a guarded window never rolls, so they would not be written).
 */
export function encodeAdjust(batch: AdjustBatch, opts: EncodeOptions, ticket?: AdjustTicket): ScriptCall {
  const { prefix } = opts;
  const keys: string[] = [];
  const hkeys: string[] = [];
  const rel = batch.release;
  const readBack = batch.readBack !== false;
  if (ticket) keys.push(ticket.key);
  const nrg = rel ? rel.gauges.length : 0;
  const nrh = rel ? rel.holds.length : 0;
  if (batch.windows.length >= 4096 || nrg >= 4096 || nrh >= 4096) throw tooLarge("4,096 windows, gauges or holds");
  if (!readBack && nrg === 0 && nrh === 0 && ticket?.mode === "settle" && ticket.guardByTicket !== true) {
    const lean = encodeLeanSettle(batch, prefix, ticket, rel ? rel.id : "", opts);
    if (lean) return lean;
  }
  const mode = (readBack ? 1 : 0) + 2 * (ticket ? TICKET_MODE[ticket.mode] : 0);
  const args: string[] = [
    clockArg(opts),
    rel ? rel.id : "",
    b36(batch.windows.length + 4096 * nrg + 4096 ** 2 * nrh + 4096 ** 3 * mode),
    ticket ? b36(ticket.keepMs) : "0",
  ];
  const byTicket = ticket?.guardByTicket === true;
  for (const w of batch.windows) {
    keys.push(windowKey(prefix, w.key));
    const guard = byTicket ? 2 : w.expectStart !== undefined ? 1 : 0;
    const sliding = w.algorithm === "sliding";
    const holds = readBack && w.noHolds !== true;
    const at = args.length;
    args.push("");
    if (guard === 1) args.push(b36(w.expectStart!));
    let n = 0;
    for (const c of w.counters) {
      if (!readBack && guard !== 0 && c.delta === 0) continue;
      pushCounterKeys(keys, prefix, w.key, c.name, sliding, false);
      if (holds) pushHoldKeys(hkeys, prefix, w.key, c.name);
      args.push(deltaArg(c.delta));
      n++;
    }
    args[at] = packWindow(w, n, 16 * n + 4 * guard + (sliding ? 1 : 0) + (holds ? 2 : 0));
  }
  for (const k of hkeys) keys.push(k);
  if (rel) pushLeaseKeys(keys, prefix, rel);
  return { script: ADJUST_SCRIPT, keys, args };
}

/** Largest window end the lean settle packs (`64 × end + counters` stays an exact double). */
const MAX_LEAN_END = 2 ** 46;

/**
 * The lean form of a settle (see `src/lua/adjust.ts`): a ticket in settle mode, no read-back, nothing released,
 * every window fixed and guarded by its expected start. Answers undefined when the batch does not fit it.
 */
function encodeLeanSettle(
  batch: AdjustBatch,
  prefix: string,
  ticket: AdjustTicket,
  id: string,
  opts: EncodeOptions,
): ScriptCall | undefined {
  for (const w of batch.windows) {
    if (w.algorithm === "sliding" || w.expectStart === undefined) return undefined;
    if (w.expectStart + w.windowMs >= MAX_LEAN_END || !Number.isSafeInteger(w.expectStart)) return undefined;
  }
  const keys: string[] = [ticket.key];
  const args: string[] = [clockArg(opts), id, b36(batch.windows.length + 8 * 4096 ** 3), b36(ticket.keepMs)];
  for (const w of batch.windows) {
    keys.push(windowKey(prefix, w.key));
    const at = args.length;
    args.push(String(w.expectStart), "");
    let n = 0;
    for (const c of w.counters) {
      if (c.delta === 0) continue;
      pushCounterKeys(keys, prefix, w.key, c.name, false, false);
      args.push(deltaArg(c.delta));
      n++;
    }
    if (n >= MAX_COUNTERS) throw tooLarge(`${n} counters in window ${w.key} (at most ${MAX_COUNTERS - 1})`);
    args[at + 1] = b36((w.expectStart! + w.windowMs) * 64 + n);
  }
  return { script: ADJUST_SCRIPT, keys, args };
}

/** Encodes a lease renewal for {@link RENEW_SCRIPT}; with `ticket`, an open ticket there is renewed too. */
export function encodeRenew(lease: LeaseRef, ttlMs: number, opts: EncodeOptions, ticket?: string): ScriptCall {
  const { prefix } = opts;
  const keys: string[] = [];
  pushLeaseKeys(keys, prefix, lease);
  if (ticket !== undefined) keys.push(ticket);
  const args = [
    clockArg(opts),
    lease.id,
    b36(ttlMs),
    b36(lease.gauges.length),
    b36(lease.holds.length),
    ticket !== undefined ? "1" : "0",
  ];
  return { script: RENEW_SCRIPT, keys, args };
}

/** Encodes a read for {@link READ_SCRIPT}. */
export function encodeRead(query: ReadQuery, opts: EncodeOptions): ScriptCall {
  const { prefix } = opts;
  const keys: string[] = [];
  const hkeys: string[] = [];
  if (query.windows.length >= 65536 || query.gauges.length >= 65536) throw tooLarge("65,536 windows or gauges");
  const args: string[] = [clockArg(opts), b36(query.windows.length * 65536 + query.gauges.length)];
  for (const w of query.windows) {
    keys.push(windowKey(prefix, w.key));
    const sliding = w.algorithm === "sliding";
    const holds = w.noHolds !== true;
    const n = w.counters.length;
    args.push(packWindow(w, n, 4 * n + (sliding ? 1 : 0) + (holds ? 2 : 0)));
    for (const name of w.counters) {
      pushCounterKeys(keys, prefix, w.key, name, sliding, false);
      if (holds) pushHoldKeys(hkeys, prefix, w.key, name);
    }
  }
  for (const k of hkeys) keys.push(k);
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

/** One window's states in a reply: start, then value, previous (sliding only) and held (with holds only). */
function readWindow(r: Reply, w: WindowSpec, counters: number): WindowState {
  const sliding = w.algorithm === "sliding";
  const holds = w.noHolds !== true;
  const start = r.next();
  const states: CounterState[] = new Array(counters);
  for (let c = 0; c < counters; c++) {
    const value = r.next();
    const previous = sliding ? r.next() : 0;
    const held = holds ? r.next() : 0;
    states[c] = { value, previous, held };
  }
  return { start, counters: states };
}

function readGauge(r: Reply): GaugeState {
  const inFlight = r.next();
  const e = r.next();
  return { inFlight, earliestExpiry: e < 0 ? null : e };
}

const TICKET_STATES: Array<TicketState | undefined> = [undefined, "open", "unknown", "finished"];

/** Decodes the reply of {@link ADMIT_SCRIPT} for `batch`. */
export function decodeAdmit(batch: AdmitBatch, reply: unknown): AdmitResult {
  const r = new Reply("admit", reply);
  const admitted = r.next() === 1;
  const now = r.next();
  const kind = r.next();
  const a = r.next();
  const b = r.next();
  const windows = batch.windows.map((w) => readWindow(r, w, w.counters.length));
  const gauges = batch.gauges.map(() => readGauge(r));
  r.end();
  const result: AdmitResult = { admitted, now, windows, gauges };
  if (kind === 1) result.denied = { type: "counter", window: a, counter: b };
  else if (kind === 2) result.denied = { type: "gauge", gauge: a };
  else if (kind === 3) result.denied = { type: "ticket" };
  return result;
}

/**
 * Decodes the reply of {@link ADJUST_SCRIPT} for `batch` (`windows: []` without read-back). `ticket` is the state
 * the script found (absent when the call carried no ticket).
 */
export function decodeAdjust(batch: AdjustBatch, reply: unknown): AdjustResult {
  const r = new Reply("adjust", reply);
  const now = r.next();
  const released = r.next();
  const ticket = TICKET_STATES[r.next()];
  const readBack = batch.readBack !== false;
  const applied: boolean[] = new Array(batch.windows.length);
  const windows: WindowState[] = readBack ? new Array(batch.windows.length) : [];
  batch.windows.forEach((w, i) => {
    applied[i] = r.next() === 1;
    if (readBack) windows[i] = readWindow(r, w, w.counters.length);
  });
  r.end();
  const result: AdjustResult = { now, applied, windows, released };
  if (ticket !== undefined) result.ticket = ticket;
  return result;
}

/** Decodes the reply of {@link RENEW_SCRIPT}: the gauge and hold entries renewed, and whether an open ticket was. */
export function decodeRenew(reply: unknown): { renewed: number; ticket: boolean } {
  const r = new Reply("renew", reply);
  r.next();
  const renewed = r.next();
  const ticket = r.next() === 1;
  r.end();
  return { renewed, ticket };
}

/** Decodes the reply of {@link READ_SCRIPT} for `query`. */
export function decodeRead(query: ReadQuery, reply: unknown): ReadResult {
  const r = new Reply("read", reply);
  const now = r.next();
  const windows = query.windows.map((w) => readWindow(r, w, w.counters.length));
  const gauges = query.gauges.map(() => readGauge(r));
  r.end();
  return { now, windows, gauges };
}
