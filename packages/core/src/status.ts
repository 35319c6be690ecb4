/**
 * Statuses and denials: what each limit of an admission looks like (used, remaining, reset time, would-deny) from
 * the states the store answered, and the exact retry time of the limit that denied.
 */
import { FlatBatch } from "./flat.js";
import { COUNTERS, GAUGE, type LimitPlanner, type LimitRecord, Planned, START, STRIDE } from "./plan.js";
import type { CounterState } from "./store.js";
import type { Denial, Descriptor, LimitStatus, LimitType } from "./types.js";

/** The states of a batch in flat form: a `FlatResult`, or one rebuilt from a {@link LimitRecord}. */
export interface FlatStates {
  readonly starts: readonly number[];
  readonly values: readonly number[];
  readonly previous: readonly number[];
  readonly held: readonly number[];
  readonly inFlight: readonly number[];
  readonly earliest: ReadonlyArray<number | null>;
}

/** Used capacity of a counter at `now`: committed and held, plus the weighted previous window when sliding. */
export function usedOf(
  value: number,
  previous: number,
  held: number,
  windowMs: number,
  sliding: boolean,
  start: number,
  now: number,
): number {
  const base = value + held;
  if (!sliding || previous === 0) return base;
  const weight = Math.max(0, windowMs - (now - start)) / windowMs;
  return base + Math.floor(previous * weight);
}

function status(
  d: Descriptor,
  type: LimitType,
  limit: number,
  used: number,
  resetAt: number,
  enforced: boolean,
  admitted: boolean,
): LimitStatus {
  return {
    scope: d.scope,
    value: d.value,
    type,
    limit,
    remaining: Math.max(0, limit - used),
    used,
    resetAt,
    wouldDeny: !enforced && (admitted ? used > limit : used >= limit),
    enforced,
  };
}

/**
 * One status per limit of the rate-limit part `p` of `b` (its windows' counters in order, then its gauges), from the
 * states `s` (after applying when `admitted`, before when denied) at the store's time `now`.
 */
export function statusesOf(b: FlatBatch, s: FlatStates, p: Planned, now: number, admitted: boolean): LimitStatus[] {
  const out: LimitStatus[] = [];
  let c = p.c0;
  for (let i = 0; i < p.wn; i++) {
    const wi = p.w0 + i;
    const d = p.windows[i]!;
    const windowMs = b.windowMs[wi]!;
    const sliding = b.sliding[wi]!;
    const start = s.starts[wi]!;
    for (const end = b.counterEnd[wi]!; c < end; c++) {
      const used = usedOf(s.values[c]!, s.previous[c]!, s.held[c]!, windowMs, sliding, start, now);
      const st = status(d, b.names[c] as LimitType, b.limits[c]!, used, start + windowMs, b.enforce[c]!, admitted);
      st.windowMs = windowMs;
      out.push(st);
    }
  }
  for (let g = 0; g < p.gn; g++) {
    const gi = p.g0 + g;
    const resetAt = s.earliest[gi] ?? now;
    out.push(status(p.gauges[g]!, GAUGE, b.gaugeLimits[gi]!, s.inFlight[gi]!, resetAt, b.gaugeEnforce[gi]!, admitted));
  }
  return out;
}

/** The states an admitted {@link LimitRecord} kept, in flat form for {@link statusesOf} (part at offset 0). */
export function keptStates(b: FlatBatch, h: LimitRecord): FlatStates {
  const nums = h.nums;
  const starts: number[] = [];
  const values: number[] = [];
  const previous: number[] = [];
  const held: number[] = [];
  let c = 0;
  for (let i = 0, o = 0; i < h.count; i++, o += STRIDE) {
    starts.push(nums[o + START]!);
    for (let k = 0, end = b.counterEnd[i]!; c < end; k++, c++) {
      values.push(nums[o + COUNTERS + 2 * k]!); // value includes held
      previous.push(nums[o + COUNTERS + 2 * k + 1]!);
      held.push(0);
    }
  }
  const inFlight: number[] = [];
  const earliest: Array<number | null> = [];
  for (let g = 0, o = h.count * STRIDE; g < h.gaugeCount; g++, o += 2) {
    inFlight.push(nums[o]!);
    earliest.push(nums[o + 1]! < 0 ? null : nums[o + 1]!);
  }
  return { starts, values, previous, held, inFlight, earliest };
}

/**
 * The statuses of an admitted request's rate-limit part, at its admission, from what it kept: the part is planned
 * again from its descriptors (with the enforcement it had then) to know each limit.
 */
export function statusesOfRecord(planner: LimitPlanner, h: LimitRecord): LimitStatus[] {
  if (h.count === 0 && h.gaugeCount === 0) return [];
  // Scratch reused from call to call: filled and read synchronously (a fill with given flags runs no condition, so
  // nothing re-enters here; the flag is a guard all the same).
  const own = !scratchBusy;
  const b = own ? scratchBatch.reset() : new FlatBatch();
  const p = own ? scratchPlanned : new Planned();
  scratchBusy = true;
  try {
    // undefined flags mean every descriptor was enforced at admission (conditions are not evaluated again)
    planner.fill(b, h.descriptors, h.input, h.output, p, h.enforced ?? allEnforced(h.descriptors.length));
    return statusesOf(b, keptStates(b, h), p, h.now, true);
  } finally {
    if (own) scratchBusy = false;
  }
}

const scratchBatch = new FlatBatch();
const scratchPlanned = new Planned();
let scratchBusy = false;
const ALL_ENFORCED: boolean[] = [];

/** `n` flags all true (a shared array: fill only reads it). */
function allEnforced(n: number): boolean[] {
  while (ALL_ENFORCED.length < n) ALL_ENFORCED.push(true);
  return ALL_ENFORCED;
}

/**
 * The denial of a counter (flat index `c`) or, with `c` negative, of gauge `g` of the part `p`: its status (from
 * `statuses`, the part's statuses before the request) and the exact time until it could admit. A gauge's retry is
 * `parallelRetryAfterMs`, capped by the earliest lease expiry.
 */
export function denialOf(
  b: FlatBatch,
  s: FlatStates,
  p: Planned,
  statuses: LimitStatus[],
  now: number,
  c: number,
  g: number,
  parallelRetryAfterMs: number,
): Denial {
  if (c < 0) {
    const gi = p.g0 + g;
    const earliest = s.earliest[gi] ?? null;
    const wait = earliest === null ? 0 : earliest - now;
    return {
      ...statuses[p.cn + g]!,
      retryAfterMs: Math.max(0, Math.min(parallelRetryAfterMs, wait)),
      now,
    };
  }
  let wi = p.w0;
  while (b.counterEnd[wi]! <= c) wi++;
  const state: CounterState = { value: s.values[c]!, previous: s.previous[c]!, held: s.held[c]! };
  const retryAt = capacityAt(
    state,
    b.amounts[c]! + b.holds[c]!,
    b.limits[c]!,
    b.windowMs[wi]!,
    b.sliding[wi]!,
    s.starts[wi]!,
    now,
  );
  return { ...statuses[c - p.c0]!, retryAfterMs: Math.max(0, retryAt - now), now };
}

/**
 * The earliest time a denied counter could admit `add`: the end of a fixed window, or for a sliding window the
 * moment the previous window's weight has decayed enough (possibly in the next window).
 */
export function capacityAt(
  s: CounterState,
  add: number,
  limit: number,
  windowMs: number,
  sliding: boolean,
  start: number,
  now: number,
): number {
  const W = windowMs;
  const end = start + W;
  if (!sliding) return end;
  // room needed for the decaying previous-window part, this window's committed and held usage, and `add`
  const room = (add > 0 ? limit - add : limit - 1e-9) - s.value - s.held;
  if (room >= 0 && s.previous > 0) {
    const at = start + Math.ceil(W * (1 - room / s.previous));
    if (at < end) return Math.max(now, at);
  }
  // next window: this window's value becomes the decaying part
  const nextRoom = (add > 0 ? limit - add : limit - 1e-9) - s.held;
  if (nextRoom < 0 || s.value === 0) return nextRoom < 0 ? end + W : end;
  return end + Math.max(0, Math.ceil(W * (1 - nextRoom / s.value)));
}

/** Whether an enforced gauge of part `p` is full in the states `s` (it would deny one more lease). */
export function fullGauge(b: FlatBatch, s: FlatStates, p: Planned): number {
  for (let g = 0; g < p.gn; g++) {
    const gi = p.g0 + g;
    if (b.gaugeEnforce[gi] && s.inFlight[gi]! + 1 > b.gaugeLimits[gi]!) return g;
  }
  return -1;
}
