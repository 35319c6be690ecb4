/**
 * Planning: how a request's descriptors become the windows, counters and gauges of a batch; what an admitted
 * request keeps of the store's answer (a few numbers per window); and the deltas that settle, fail or release it.
 *
 * A plan writes into a {@link FlatBatch} from its current end, so several parts (rate limits, budgets) can share one
 * batch and one atomic store call: a part remembers where it starts ({@link Planned}).
 */
import { isNonNegativeInteger, TollgateError } from "./errors.js";
import type { FlatBatch, FlatResult } from "./flat.js";
import { KeyCache, type KeySlot } from "./keys.js";
import { DEFAULT_WINDOW_MS, validateLimits } from "./scopes.js";
import type { LeaseRef } from "./store.js";
import type { Descriptor, TokenAmounts } from "./types.js";

/** The in-flight gauge's name (LiteLLM's). */
export const GAUGE = "max_parallel_requests";

/*
 * What an admitted request keeps of each of its windows: STRIDE numbers in one array (one allocation per admission,
 * no boxed numbers): the window's start, length and flags, then for its first and second counter the value plus
 * held and the previous window's value, as the store answered (statuses are built from them on demand). Gauges
 * follow the windows: in-flight count and earliest expiry (-1 for none) each.
 */
export const START = 0;
export const WINDOW_MS = 1;
export const FLAGS = 2;
export const COUNTERS = 3;
export const STRIDE = 7;
/** Window flags. */
export const SLIDING = 1;
export const HAS_REQUESTS = 2;
export const HAS_TOKENS = 4;
/** The tokens counter counts input tokens only, or output tokens only (neither: both). */
export const INPUT = 8;
export const OUTPUT = 16;

/** Settle: charge actual usage. Fail: keep the request count, charge what was used (often 0). Release: undo. */
export const SETTLE = 0;
export const FAIL = 1;
export const RELEASE = 2;
export type FinishKind = typeof SETTLE | typeof FAIL | typeof RELEASE;

/** The tokens a window of these flags counts out of `input` and `output`. */
export function amountOf(flags: number, input: number, output: number): number {
  if ((flags & INPUT) !== 0) return input;
  if ((flags & OUTPUT) !== 0) return output;
  return input + output;
}

/** {@link INPUT}, {@link OUTPUT} or 0 (total) for a descriptor's `tokenType`. */
export function tokenFlag(d: Descriptor): number {
  const t = d.tokenType;
  if (t === undefined || t === "total") return 0;
  return t === "input" ? INPUT : OUTPUT;
}

/** The flags of a descriptor's window. */
export function windowFlags(sliding: boolean, d: Descriptor): number {
  return (
    (sliding ? SLIDING : 0) |
    (d.requests !== undefined ? HAS_REQUESTS : 0) |
    (d.tokens !== undefined ? HAS_TOKENS | tokenFlag(d) : 0)
  );
}

/**
 * A token amount as given to an admission or a settle: a number is a total (counted as output: input 0), an object
 * names both parts. `what` names the argument in errors.
 * @throws {TollgateError} `INVALID_AMOUNT` for anything but non-negative integers.
 */
export function tokenAmounts(x: number | TokenAmounts | undefined, what: string): TokenAmounts {
  if (x === undefined) return NO_TOKENS;
  if (typeof x === "number") {
    if (!isNonNegativeInteger(x)) {
      throw new TollgateError("INVALID_AMOUNT", `${what} must be a non-negative integer, got ${x}`);
    }
    return x === 0 ? NO_TOKENS : { input: 0, output: x };
  }
  if (typeof x !== "object" || x === null) {
    throw new TollgateError(
      "INVALID_AMOUNT",
      `${what} must be a non-negative integer or { input, output }, got ${x === null ? "null" : typeof x}`,
    );
  }
  if (!isNonNegativeInteger(x.input) || !isNonNegativeInteger(x.output)) {
    throw new TollgateError(
      "INVALID_AMOUNT",
      `${what}.input and ${what}.output must be non-negative integers, got ${String(x.input)} and ${String(x.output)}`,
    );
  }
  return x;
}

const NO_TOKENS: TokenAmounts = Object.freeze({ input: 0, output: 0 });

/**
 * The output part of a token amount given as a number (the hot path's form: no object), or -1 when `x` is an
 * object to read with {@link tokenAmounts}.
 * @throws {TollgateError} `INVALID_AMOUNT` for a number that is not a non-negative integer.
 */
export function tokenTotal(x: number | TokenAmounts | undefined, what: string): number {
  if (x === undefined) return 0;
  if (typeof x !== "number") return -1;
  if (!isNonNegativeInteger(x))
    throw new TollgateError("INVALID_AMOUNT", `${what} must be a non-negative integer, got ${x}`);
  return x;
}

/** Whether a descriptor is enforced now: not in shadow mode and its condition (if any) holds. */
export function isEnforced(d: Descriptor): boolean {
  if (d.shadow) return false;
  if (d.enforceWhen === undefined) return true;
  try {
    return d.enforceWhen() !== false;
  } catch {
    return true; // a failing condition enforces (fail-safe)
  }
}

/**
 * Merges descriptors naming the same scope and value, keeping the strictest limit of each kind (and the first one's
 * other settings). Requests carry a handful of descriptors, so a pairwise scan beats building a map.
 */
export function dedupe(descriptors: readonly Descriptor[]): readonly Descriptor[] {
  const n = descriptors.length;
  let out: Descriptor[] | undefined;
  for (let i = 1; i < n; i++) {
    const d = descriptors[i]!;
    if (typeof d !== "object" || d === null) continue; // not a descriptor: validation names it
    for (let j = 0; j < i; j++) {
      const e = descriptors[j]!;
      if (typeof e === "object" && e !== null && e.value === d.value && e.scope === d.scope) {
        out ??= descriptors.slice();
        out[i] = undefined as unknown as Descriptor;
        // j is the first occurrence (the scan stops at the first match), so it is still present
        const prev = out[j]!;
        out[j] = {
          ...prev,
          requests: minDefined(prev.requests, d.requests),
          tokens: minDefined(prev.tokens, d.tokens),
          maxParallel: minDefined(prev.maxParallel, d.maxParallel),
        };
        break;
      }
    }
  }
  return out ? out.filter((d) => d !== undefined) : descriptors;
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/**
 * Where the rate-limit part of a batch sits, and what is behind each of its windows and gauges. Reused from call to
 * call by the engines (a fresh one for calls that await between filling and reading).
 */
export class Planned {
  /** First window, counter and gauge of the part in the batch. */
  w0 = 0;
  c0 = 0;
  g0 = 0;
  /** Windows, counters and gauges of the part. */
  wn = 0;
  cn = 0;
  gn = 0;
  /** The descriptor and interned key behind each window and gauge of the part. */
  readonly windows: Descriptor[] = [];
  readonly slots: KeySlot[] = [];
  readonly gauges: Descriptor[] = [];
  readonly gslots: KeySlot[] = [];
  /** Each descriptor's enforcement at admission, or undefined when every one was enforced. */
  enforced: boolean[] | undefined = undefined;
}

/**
 * What an admitted request keeps of its rate-limit part, for its statuses and for the adjustment that finishes it.
 * The limiter's reservation and the gate's ticket implement it (one object per request).
 */
export interface LimitRecord {
  /** Windows and gauges of the part. */
  count: number;
  gaugeCount: number;
  /** STRIDE numbers per window, then 2 per gauge (see the layout above). */
  nums: number[];
  /** Window keys, then gauge keys. */
  keys: string[];
  /** The in-process store's handles (windows, then gauges), or undefined on the contract's object path. */
  handles: unknown[] | undefined;
  /** Tokens reserved. */
  input: number;
  output: number;
  /** The (deduplicated) descriptors admitted and their enforcement then (undefined: all), for statuses. */
  descriptors: readonly Descriptor[];
  enforced: boolean[] | undefined;
  /** The store's time at admission. */
  now: number;
}

/** The planner of one engine: its key cache, and the rate-limit part's fill, keep and finish. */
export class LimitPlanner {
  readonly keys = new KeyCache();
  /**
   * True while a fill runs. A descriptor's condition (`enforceWhen`) may itself admit, re-entering the engine in the
   * middle of a fill: such a call must use scratch of its own.
   */
  filling = false;

  /**
   * Appends the admission of `ds` (deduplicated) to `b`: one window per descriptor with a requests or tokens limit
   * (requests count 1, tokens count the descriptor's amount out of `input` and `output`), one gauge per
   * `maxParallel`. Validates each descriptor on the way. With `enforced` given, those flags are used instead of
   * evaluating the conditions again.
   */
  fill(b: FlatBatch, ds: readonly Descriptor[], input: number, output: number, p: Planned, enforced?: boolean[]): void {
    const outer = !this.filling;
    this.filling = true;
    try {
      p.w0 = b.windowCount;
      p.c0 = b.counterCount;
      p.g0 = b.gaugeCount;
      const given = enforced !== undefined;
      let flags = enforced;
      for (let i = 0; i < ds.length; i++) {
        const d = ds[i]!;
        const slot = this.keys.slotOf(d); // validates the scope and value when they are new
        validateLimits(d);
        const hasWindow = d.requests !== undefined || d.tokens !== undefined;
        if (!hasWindow && d.maxParallel === undefined) continue;
        let enforce = true;
        if (given) enforce = flags![i]!;
        else if (!isEnforced(d)) {
          enforce = false;
          flags ??= new Array<boolean>(ds.length).fill(true);
          flags[i] = false;
        }
        if (hasWindow) {
          const w = b.windowCount - p.w0;
          p.windows[w] = d;
          p.slots[w] = slot;
          // rate-limit windows never hold (WindowSpec.noHolds: remote stores skip hold data)
          b.window(slot.key, d.windowMs ?? DEFAULT_WINDOW_MS, d.algorithm === "sliding", slot.handle, Number.NaN, true);
          if (d.requests !== undefined) b.counter("requests", d.requests, 1, 0, enforce);
          if (d.tokens !== undefined) {
            b.counter("tokens", d.tokens, amountOf(tokenFlag(d), input, output), 0, enforce);
          }
        }
        if (d.maxParallel !== undefined) {
          const g = b.gaugeCount - p.g0;
          p.gauges[g] = d;
          p.gslots[g] = slot;
          b.gauge(slot.key, GAUGE, d.maxParallel, enforce, slot.gaugeHandle);
        }
      }
      p.wn = b.windowCount - p.w0;
      p.cn = b.counterCount - p.c0;
      p.gn = b.gaugeCount - p.g0;
      p.enforced = flags;
    } finally {
      if (outer) this.filling = false;
    }
  }

  /** What {@link collect} gathered last (read right after it: the next call overwrites them). */
  keptNums: number[] = [];
  keptKeys: string[] = [];
  keptHandles: unknown[] | undefined = undefined;

  /**
   * Gathers what an admitted request keeps of its part `p` of the answer `r` into {@link keptNums},
   * {@link keptKeys} and {@link keptHandles} (fresh arrays, for the caller to keep). With the store's handles (the flat path), the key slots
   * keep them as hints for the next admission of each key.
   */
  collect(b: FlatBatch, r: FlatResult, p: Planned, flat: boolean): void {
    const n = p.wn;
    const m = p.gn;
    const nums: number[] = new Array(n * STRIDE + 2 * m);
    const keys: string[] = new Array(n + m);
    for (let i = 0, o = 0, c = p.c0; i < n; i++, o += STRIDE) {
      const wi = p.w0 + i;
      const end = b.counterEnd[wi]!;
      const two = end - c > 1; // a window has one or two counters (requests, tokens)
      nums[o + START] = r.starts[wi]!;
      nums[o + WINDOW_MS] = b.windowMs[wi]!;
      nums[o + FLAGS] = windowFlags(b.sliding[wi]!, p.windows[i]!);
      nums[o + COUNTERS] = r.values[c]! + r.held[c]!;
      nums[o + COUNTERS + 1] = r.previous[c]!;
      nums[o + COUNTERS + 2] = two ? r.values[c + 1]! + r.held[c + 1]! : 0;
      nums[o + COUNTERS + 3] = two ? r.previous[c + 1]! : 0;
      keys[i] = b.keys[wi]!;
      c = end;
    }
    for (let g = 0, o = n * STRIDE; g < m; g++, o += 2) {
      nums[o] = r.inFlight[p.g0 + g]!;
      nums[o + 1] = r.earliest[p.g0 + g] ?? -1;
      keys[n + g] = b.gaugeKeys[p.g0 + g]!;
    }
    let handles: unknown[] | undefined;
    if (flat) {
      handles = new Array(n + m);
      for (let i = 0; i < n; i++) {
        const handle = r.handles[p.w0 + i];
        handles[i] = handle;
        p.slots[i]!.handle = handle;
      }
      for (let g = 0; g < m; g++) {
        const handle = r.gaugeHandles[p.g0 + g];
        handles[n + g] = handle;
        p.gslots[g]!.gaugeHandle = handle;
      }
    }
    this.keptNums = nums;
    this.keptKeys = keys;
    this.keptHandles = handles;
  }

  /** Writes into `h` what the admitted request keeps of its part `p` of the answer `r` (see {@link collect}). */
  keep(
    h: LimitRecord,
    b: FlatBatch,
    r: FlatResult,
    p: Planned,
    ds: readonly Descriptor[],
    input: number,
    output: number,
    flat: boolean,
  ): void {
    this.collect(b, r, p, flat);
    h.count = p.wn;
    h.gaugeCount = p.gn;
    h.nums = this.keptNums;
    h.keys = this.keptKeys;
    h.handles = this.keptHandles;
    h.input = input;
    h.output = output;
    h.descriptors = ds;
    h.enforced = p.enforced;
    h.now = r.now;
  }
}

/**
 * Appends to `b` the deltas that finish an admitted request's rate-limit part, each guarded by the window it was
 * charged in: a settle or a fail moves each tokens counter by (actual − reserved) of its own token type; a release
 * gives back the request and the reserved tokens.
 */
export function fillFinish(b: FlatBatch, h: LimitRecord, kind: FinishKind, input: number, output: number): void {
  const nums = h.nums;
  for (let i = 0, o = 0; i < h.count; i++, o += STRIDE) {
    const flags = nums[o + FLAGS]!;
    if (kind === RELEASE) {
      const requests = (flags & HAS_REQUESTS) !== 0;
      const reserved = (flags & HAS_TOKENS) !== 0 ? amountOf(flags, h.input, h.output) : 0;
      if (!requests && reserved === 0) continue;
      b.window(h.keys[i]!, nums[o + WINDOW_MS]!, (flags & SLIDING) !== 0, h.handles?.[i], nums[o + START]!, true);
      if (requests) b.counter("requests", 0, -1, 0, true);
      if (reserved > 0) b.counter("tokens", 0, -reserved, 0, true);
      continue;
    }
    if ((flags & HAS_TOKENS) === 0) continue;
    const delta = amountOf(flags, input, output) - amountOf(flags, h.input, h.output);
    if (delta === 0) continue;
    b.window(h.keys[i]!, nums[o + WINDOW_MS]!, (flags & SLIDING) !== 0, h.handles?.[i], nums[o + START]!, true);
    b.counter("tokens", 0, delta, 0, true);
  }
}

/** The lease entries of a rate-limit part: its in-flight gauges. */
export function gaugeRefs(h: LimitRecord): LeaseRef["gauges"] {
  const out: LeaseRef["gauges"] = new Array(h.gaugeCount);
  for (let g = 0; g < h.gaugeCount; g++) out[g] = { key: h.keys[h.count + g]!, name: GAUGE };
  return out;
}

/** The window keys of a rate-limit part (a ticket's `LeaseRef.windows`). */
export function windowKeys(h: LimitRecord): string[] {
  return h.keys.slice(0, h.count);
}
