import { TollgateError, type WindowSpec } from "@tollgate/core";
import { type Duration, parseDuration } from "./duration.js";
import { MAX_NANO, type Nano, parseUsd } from "./money.js";
import { createSchedule, type ResetMode, type Schedule } from "./schedule.js";
import type { BudgetRef, BudgetScope, BudgetSpec } from "./types.js";
import { checkTimeZone } from "./tz.js";

const SCOPES = new Set<BudgetScope>(["key", "user", "team", "team_member", "end_user", "organization", "global"]);

/** A budget spec checked and compiled once: money in nano-USD, schedule, store key base. */
export interface CompiledBudget {
  ref: BudgetRef;
  /** Key alias (messages only). */
  alias: string | undefined;
  /** `{budget:<scope>:<id>...}`: the store base key without the period. */
  base: string;
  /** Maximum in nano-USD, or null for track-only. */
  max: Nano | null;
  soft: Nano | null;
  /** The store limit: `max`, or the largest counter value for track-only budgets. */
  limit: Nano;
  /**
   * The store limit in check mode, where a request is denied once `spend >= limit` (LiteLLM's rule): `limit`, or
   * `max + 1` for the scopes LiteLLM blocks only at `spend > max` (team, end user, global; not their per-model budgets).
   */
  checkLimit: Nano;
  /** False when the budget only counts (no maximum, or shadow). */
  enforce: boolean;
  schedule: Schedule;
  /** A shallow copy of the spec it was compiled from. */
  source: BudgetSpec;
  /**
   * The spec's fields it was compiled from, kept in this object (cache validation, {@link sameSpec}): a request
   * checks its cached budgets reading the spec and this object only (with thousands of budgets each object reached
   * is a likely cache miss).
   */
  specScope: BudgetSpec["scope"];
  specId: string;
  specMaxBudget: BudgetSpec["maxBudget"];
  specDuration: BudgetSpec["duration"];
  specSoftBudget: BudgetSpec["softBudget"];
  specTeamId: BudgetSpec["teamId"];
  specModel: BudgetSpec["model"];
  specReset: BudgetSpec["reset"];
  specTimeZone: BudgetSpec["timeZone"];
  specStartedAt: BudgetSpec["startedAt"];
  specAlias: BudgetSpec["alias"];
  specShadow: BudgetSpec["shadow"];
  /**
   * A 32-bit hash of the budget's window identity (`base` and `schedule.tag`): two budgets of different hashes never
   * share a window, which tells most pairs apart without reading their strings (see `sameWindow`).
   */
  windowHash: number;
  /** `schedule.windowMs`, kept here: the hot path reads this object only. */
  windowMs: number;
  /**
   * Memo of the last period used, `[lastStart, lastEnd)`, and its store key: the hot path compares two numbers of
   * this object and reuses the string, without reaching the schedule (with thousands of budgets every object reached
   * is a likely cache miss).
   */
  lastStart: number;
  lastEnd: number;
  lastKey: string;
  /** The last period's id (see {@link periodId}). */
  lastId: string;
  /** `ref.model`, kept here for the hot path. */
  model: string | undefined;
  /** The in-process store's handle of the window of the last admission (a hint the store checks), or undefined. */
  handle: unknown;
}

/** The store key of a compiled budget's period containing `t` (memoized per period). */
export function periodKey(b: CompiledBudget, t: number): string {
  if (t >= b.lastStart && t < b.lastEnd) return b.lastKey;
  const p = b.schedule.periodAt(t);
  b.lastStart = p.start;
  b.lastEnd = p.end;
  b.lastId = p.id;
  b.lastKey = `${b.base}:${p.id}`;
  return b.lastKey;
}

/** The id of a compiled budget's period containing `t` (memoized with {@link periodKey}). */
export function periodId(b: CompiledBudget, t: number): string {
  if (!(t >= b.lastStart && t < b.lastEnd)) periodKey(b, t);
  return b.lastId;
}

/** The store window of a compiled budget's period containing `t`, with `counters` (admit, adjust or read form). */
export function windowOf<C>(b: CompiledBudget, t: number, counters: C[]): WindowSpec & { counters: C[] } {
  return { key: periodKey(b, t), windowMs: b.windowMs, algorithm: "fixed", counters };
}

/** Whether a spec still has every field a compiled budget was built from. */
export function sameSpec(c: CompiledBudget, b: BudgetSpec): boolean {
  return (
    c.specScope === b.scope &&
    c.specId === b.id &&
    c.specMaxBudget === b.maxBudget &&
    c.specDuration === b.duration &&
    c.specSoftBudget === b.softBudget &&
    c.specTeamId === b.teamId &&
    c.specModel === b.model &&
    c.specReset === b.reset &&
    c.specTimeZone === b.timeZone &&
    c.specStartedAt === b.startedAt &&
    c.specAlias === b.alias &&
    c.specShadow === b.shadow
  );
}

/** FNV-1a over the UTF-16 units of `text`, as a 32-bit integer. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** Engine-wide defaults a spec may override. */
export interface CompileDefaults {
  timeZone: string;
  reset: ResetMode;
  keyPrefix: string;
  /** Told when a duration loads only through LiteLLM's lenient prefix reading (`"1hr"` -> `1h`). */
  onDurationWarning?: (ref: BudgetRef, input: string, readAs: Duration, message: string) => void;
}

/**
 * Scopes LiteLLM blocks only once spend is strictly above the maximum (`_team_max_budget_check`,
 * `_check_end_user_budget`, `_global_proxy_budget_check`); keys, users, team members, organizations and every
 * per-model budget block at `spend >= max`.
 */
const STRICT_IN_CHECK = new Set<BudgetScope>(["team", "end_user", "global"]);

function checkId(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length === 0 || value.includes("{") || value.includes("}")) {
    throw new TollgateError(
      "INVALID_SCOPE",
      `${what} must be a non-empty string without { or }, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** The store base key of a budget identity, e.g. `{budget:team_member:t1:u1}` or `{budget:key:abc:model:gpt-4o}`. */
export function baseKeyOf(ref: BudgetRef, keyPrefix: string): string {
  if (typeof ref !== "object" || ref === null) {
    throw new TollgateError("INVALID_ARGUMENT", "expected a budget ref { scope, id, teamId?, model? }");
  }
  const who = ref.scope === "team_member" ? `${ref.teamId}:${ref.id}` : ref.id;
  return `{${keyPrefix}:${ref.scope}:${who}${ref.model === undefined ? "" : `:model:${ref.model}`}}`;
}

/**
 * Checks and compiles a budget spec.
 * @throws TollgateError `INVALID_SCOPE`, `INVALID_AMOUNT`, `INVALID_DURATION` or `INVALID_ARGUMENT`.
 */
export function compileBudget(spec: BudgetSpec, defaults: CompileDefaults): CompiledBudget {
  if (typeof spec !== "object" || spec === null) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `a budget must be an object, got ${spec === null ? "null" : typeof spec}`,
    );
  }
  if (!SCOPES.has(spec.scope)) {
    throw new TollgateError("INVALID_SCOPE", `unknown budget scope ${JSON.stringify(spec.scope)}`);
  }
  const ref: BudgetRef = { scope: spec.scope, id: checkId(spec.id, `${spec.scope} budget id`) };
  if (spec.scope === "team_member") ref.teamId = checkId(spec.teamId, "team_member budget teamId");
  if (spec.model !== undefined) ref.model = checkId(spec.model, "budget model");
  const what = `${spec.scope} budget ${spec.id}`;
  // Budgets finer than 1e-9 USD round down (LiteLLM's docs use 0.000000000001 to mean "nothing").
  const max = spec.maxBudget === null ? null : parseUsd(spec.maxBudget, `${what} maxBudget`, { subNano: "floor" });
  const soft =
    spec.softBudget === null || spec.softBudget === undefined
      ? null
      : parseUsd(spec.softBudget, `${what} softBudget`, { subNano: "floor" });
  const warn = defaults.onDurationWarning;
  const duration = parseDuration(
    spec.duration,
    warn === undefined
      ? undefined
      : { onWarning: (message, readAs) => warn(ref, String(spec.duration), readAs, message) },
  );
  const schedule = createSchedule({
    duration,
    reset: spec.reset ?? defaults.reset,
    timeZone: spec.timeZone === undefined ? defaults.timeZone : checkTimeZone(spec.timeZone),
    ...(spec.startedAt === undefined ? {} : { anchor: spec.startedAt }),
  });
  const base = baseKeyOf(ref, defaults.keyPrefix);
  // the fields the hot path reads first (they share the object's first cache lines)
  return {
    base,
    windowHash: hash32(`${base}\u0001${schedule.tag}`),
    specScope: spec.scope,
    specId: spec.id,
    specMaxBudget: spec.maxBudget,
    specDuration: spec.duration,
    specSoftBudget: spec.softBudget,
    specTeamId: spec.teamId,
    specModel: spec.model,
    specReset: spec.reset,
    specTimeZone: spec.timeZone,
    specStartedAt: spec.startedAt,
    specAlias: spec.alias,
    specShadow: spec.shadow,
    lastStart: 0,
    lastEnd: 0,
    lastKey: "",
    lastId: "",
    model: ref.model,
    windowMs: schedule.windowMs,
    limit: max ?? MAX_NANO,
    checkLimit:
      max !== null && ref.model === undefined && STRICT_IN_CHECK.has(ref.scope)
        ? Math.min(max + 1, MAX_NANO)
        : (max ?? MAX_NANO),
    enforce: max !== null && spec.shadow !== true,
    handle: undefined,
    ref,
    alias: spec.alias,
    max,
    soft,
    schedule,
    source: { ...spec },
  };
}

/** A cheap fingerprint of everything that changes a compiled budget. */
export function fingerprint(s: BudgetSpec): string {
  return `${s.scope}\u0001${s.id}\u0001${s.teamId}\u0001${s.model}\u0001${s.maxBudget}\u0001${s.softBudget}\u0001${s.duration}\u0001${s.reset}\u0001${s.timeZone}\u0001${s.startedAt}\u0001${s.alias}\u0001${s.shadow}`;
}

/** Whether a per-model budget applies to a request model: exact name, or either side's part after the last `/`. */
export function modelMatches(budgetModel: string, requestModel: string): boolean {
  if (typeof budgetModel !== "string" || typeof requestModel !== "string") {
    throw new TollgateError("INVALID_ARGUMENT", "model names must be strings");
  }
  if (budgetModel === requestModel) return true;
  const tail = (m: string) => m.slice(m.lastIndexOf("/") + 1);
  return tail(budgetModel) === tail(requestModel);
}
