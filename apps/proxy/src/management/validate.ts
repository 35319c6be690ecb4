import { formatDuration, MAX_NANO, parseDuration } from "@tollgate/budgets";
import type { JsonObject, ModelBudgetEntry } from "../db/repository.js";
import { ApiError, badRequest } from "./errors.js";

/** Longest id, alias, e-mail or role accepted (characters). */
export const MAX_ID_LENGTH = 256;
/** Longest JSON document (`metadata`, `config`, …) accepted, serialized (bytes of UTF-16 code units). */
export const MAX_JSON_LENGTH = 64 * 1024;
/** Largest budget in USD (the exact range of one nano-USD counter). */
export const MAX_USD = MAX_NANO / 1e9;

const NUMERIC = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;
const INTEGER = /^[+]?\d+$/;

/**
 * Parses a request body. An empty body is `{}`; anything but a JSON object (broken JSON, an array, a number) is a
 * 400 that names what is wrong. LiteLLM's docs show bodies with trailing commas and `# comments`: they are
 * answered with this 400 too, never guessed.
 */
export function parseJsonObject(raw: string | undefined): JsonObject {
  if (raw === undefined || raw.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw badRequest(`Invalid JSON in request body: ${(err as Error).message}`, "body");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest("The request body must be a JSON object", "body");
  }
  return value as JsonObject;
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function checkText(name: string, s: string, max: number): string {
  if (s.length > max) throw badRequest(`${name} is too long (${s.length} characters; at most ${max})`, name);
  // PostgreSQL text cannot hold NUL; reject it on every engine so both behave the same.
  if (s.includes("\u0000")) throw badRequest(`${name} must not contain NUL characters`, name);
  return s;
}

/** Reads typed fields of a request body; every reader throws a 400 naming the field. `undefined` = absent. */
export class Fields {
  constructor(readonly body: JsonObject) {}

  /** Whether the field is present (a present `null` counts). */
  has(name: string): boolean {
    return Object.hasOwn(this.body, name) && this.body[name] !== undefined;
  }

  /** A string (ids, aliases, e-mails): at most {@link MAX_ID_LENGTH} characters. */
  str(name: string, opts: { max?: number } = {}): string | null | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return v as null | undefined;
    if (typeof v !== "string") throw badRequest(`${name} must be a string, got ${show(v)}`, name);
    return checkText(name, v, opts.max ?? MAX_ID_LENGTH);
  }

  /**
   * An entity id: a non-empty string without `{` or `}` (Tollgate's Redis keys put ids inside hash tags) of at
   * most {@link MAX_ID_LENGTH} characters.
   */
  id(name: string): string | null | undefined {
    const v = this.str(name);
    if (v === undefined || v === null) return v;
    return checkId(name, v);
  }

  requiredId(name: string): string {
    const v = this.id(name);
    if (v === undefined || v === null) throw badRequest(`${name} is required`, name);
    return v;
  }

  /** A list of strings (`models`, ids). */
  strList(name: string, opts: { ids?: boolean } = {}): string[] | null | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return v as null | undefined;
    if (!Array.isArray(v)) throw badRequest(`${name} must be a list of strings, got ${show(v)}`, name);
    if (v.length > 10_000) throw badRequest(`${name} has too many entries (at most 10000)`, name);
    return v.map((item, i) => {
      if (typeof item !== "string") throw badRequest(`${name}[${i}] must be a string, got ${show(item)}`, name);
      checkText(`${name}[${i}]`, item, MAX_ID_LENGTH);
      return opts.ids ? checkId(`${name}[${i}]`, item) : item;
    });
  }

  /** USD amount ≥ 0: a number or a numeric string (`"0.0000001"`); `""` is null (LiteLLM's rule for max_budget). */
  usd(name: string): number | null | undefined {
    const v = this.body[name];
    if (v === undefined || v === null || v === "") return v === "" ? null : (v as null | undefined);
    return usdValue(name, v, false);
  }

  /** A non-negative integer (limits): a number or an integer string; 0 is a valid limit that refuses everything. */
  int(name: string): number | null | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return v as null | undefined;
    return intValue(name, v);
  }

  bool(name: string): boolean | null | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return v as null | undefined;
    if (typeof v !== "boolean") throw badRequest(`${name} must be true or false, got ${show(v)}`, name);
    return v;
  }

  /** A JSON object of at most {@link MAX_JSON_LENGTH} serialized characters. */
  obj(name: string): JsonObject | null | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return v as null | undefined;
    if (typeof v !== "object" || Array.isArray(v))
      throw badRequest(`${name} must be a JSON object, got ${show(v)}`, name);
    const text = JSON.stringify(v);
    checkText(name, text, MAX_JSON_LENGTH);
    return v as JsonObject;
  }

  /** LiteLLM's duration grammar (`30s`, `30m`, `30h`, `30d`, `2w`, `1mo`); `null`/`""`/`"none"` = never. */
  duration(name: string): string | null | undefined {
    const v = this.body[name];
    if (v === undefined) return undefined;
    if (v === null) return null;
    if (typeof v !== "string") {
      throw badRequest(`${name} must be a duration string such as "30d" or "1mo", got ${show(v)}`, name);
    }
    try {
      // Stored in its canonical form (`1hr` → `1h`, which LiteLLM reads the same way).
      const d = parseDuration(v);
      return d === null ? null : formatDuration(d);
    } catch (err) {
      throw badRequest(`${name}: ${(err as Error).message}`, name);
    }
  }

  /** `{model: limit}` maps (`model_rpm_limit`, `model_tpm_limit`). */
  intMap(name: string): Record<string, number> | null | undefined {
    const v = this.obj(name);
    if (v === undefined || v === null) return v;
    const out: Record<string, number> = {};
    for (const [model, n] of Object.entries(v)) {
      checkId(`${name} model`, model);
      out[model] = intValue(`${name}.${model}`, n, name);
    }
    return out;
  }

  /**
   * `model_max_budget`: `{model: {budget_limit, time_period}}` (the seed's shape), `{model: {max_budget,
   * budget_duration}}` or LiteLLM's older `{model: 5.0}`; normalized to one entry object per model. A negative
   * amount means "unlimited" (LiteLLM's rule).
   */
  modelBudgets(name: string): Record<string, ModelBudgetEntry> | null | undefined {
    const v = this.obj(name);
    if (v === undefined || v === null) return v;
    const out: Record<string, ModelBudgetEntry> = {};
    for (const [model, entry] of Object.entries(v)) {
      checkId(`${name} model`, model);
      const where = `${name}.${model}`;
      if (typeof entry === "number" || typeof entry === "string") {
        out[model] = { max_budget: usdValue(where, entry, true, name) };
        continue;
      }
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        throw badRequest(
          `${where} must be {"budget_limit": <USD>, "time_period": "<duration>"}, got ${show(entry)}`,
          name,
        );
      }
      const e = new Fields(entry as JsonObject);
      const budget = e.has("budget_limit")
        ? usdValue(`${where}.budget_limit`, e.body.budget_limit, true, name)
        : undefined;
      const max = e.has("max_budget") ? usdValue(`${where}.max_budget`, e.body.max_budget, true, name) : undefined;
      if (budget === undefined && max === undefined) {
        throw badRequest(`${where} needs "budget_limit" (or "max_budget")`, name);
      }
      const norm: ModelBudgetEntry = {};
      if (budget !== undefined) norm.budget_limit = budget;
      if (max !== undefined) norm.max_budget = max;
      const period = withParam(name, () => e.duration("time_period"));
      const duration = withParam(name, () => e.duration("budget_duration"));
      if (period !== undefined) norm.time_period = period;
      if (duration !== undefined) norm.budget_duration = duration;
      const tpm = withParam(name, () => e.int("tpm_limit"));
      const rpm = withParam(name, () => e.int("rpm_limit"));
      if (tpm !== undefined) norm.tpm_limit = tpm;
      if (rpm !== undefined) norm.rpm_limit = rpm;
      out[model] = norm;
    }
    return out;
  }
}

/** Runs a nested field reader, reporting its errors under the top-level field `param`. */
function withParam<T>(param: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ApiError) throw badRequest(err.message, param);
    throw err;
  }
}

/** Checks an entity id (see {@link Fields.id}). */
export function checkId(name: string, v: string): string {
  if (v.length === 0) throw badRequest(`${name} must not be empty`, name);
  checkText(name, v, MAX_ID_LENGTH);
  if (v.includes("{") || v.includes("}")) throw badRequest(`${name} must not contain "{" or "}"`, name);
  return v;
}

function usdValue(name: string, v: unknown, allowNegative: boolean, param = name): number {
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "string" && NUMERIC.test(v.trim())) n = Number(v.trim());
  else if (typeof v === "string" && allowNegative && /^-/.test(v.trim()) && NUMERIC.test(v.trim().slice(1)))
    n = Number(v.trim());
  else throw badRequest(`${name} must be a number of USD, got ${show(v)}`, param);
  if (!Number.isFinite(n)) throw badRequest(`${name} must be a finite number, got ${show(v)}`, param);
  if (n < 0 && !allowNegative) throw badRequest(`${name} cannot be negative. Received: ${show(v)}`, param);
  if (n > MAX_USD) throw badRequest(`${name} is too large (at most ${MAX_USD} USD)`, param);
  return n;
}

function intValue(name: string, v: unknown, param = name): number {
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "string" && INTEGER.test(v.trim())) n = Number(v.trim());
  else throw badRequest(`${name} must be a non-negative integer, got ${show(v)}`, param);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw badRequest(`${name} must be a non-negative integer, got ${show(v)}`, param);
  }
  return n;
}

/** Reads `page`/`size`-style query numbers: positive integers within bounds, with defaults. */
export function queryInt(query: URLSearchParams, name: string, def: number, max: number): number {
  const v = query.get(name);
  if (v === null || v === "") return def;
  if (!INTEGER.test(v)) throw badRequest(`${name} must be a positive integer, got ${show(v)}`, name);
  const n = Number(v);
  if (n < 1 || n > max) throw badRequest(`${name} must be between 1 and ${max}, got ${n}`, name);
  return n;
}

/** `YYYY-MM-DD` (a UTC day) or an ISO instant → ms; `endOfDay` turns a bare day into the start of the next day. */
export function queryDate(query: URLSearchParams, name: string, endOfDay = false): number | undefined {
  const v = query.get(name);
  if (v === null || v === "") return undefined;
  if (/^\d{4}-\d{2}-\d{2}$/.test(v)) {
    const t = Date.parse(`${v}T00:00:00Z`);
    if (Number.isNaN(t)) throw badRequest(`${name} is not a valid date: ${show(v)}`, name);
    return endOfDay ? t + 86_400_000 : t;
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw badRequest(`${name} must be a date (YYYY-MM-DD) or an ISO time, got ${show(v)}`, name);
  return t;
}
