/**
 * Form fields and their validation, before anything is sent. A form is a list of {@link FieldSpec}s; the page keeps
 * the raw strings the person typed and {@link validateForm} turns them into the request body (LiteLLM's field names)
 * or errors per field. Pure: unit-tested in Node.
 */

export type FieldKind =
  | "text"
  | "id"
  | "email"
  | "usd"
  | "int"
  | "duration"
  | "list"
  | "select"
  | "bool"
  | "json"
  | "model-int-map"
  | "model-budget-map";

export interface FieldSpec {
  /** The request field (LiteLLM's name). */
  name: string;
  label: string;
  kind: FieldKind;
  required?: boolean;
  /** A line under the field (also its accessible description). */
  help?: string;
  /** Choices of a `select`. */
  options?: { value: string; label: string }[];
  /** Only on create (ids): shown read-only when editing. */
  createOnly?: boolean;
  /** For `model-budget-map`: LiteLLM's key shape `{budget_limit, time_period}` or the budget table's `{max_budget, budget_duration}`. */
  variant?: "key" | "budget";
  /** Another field it conflicts with (both set is an error), e.g. `max_budget` vs `budget_id` of a customer. */
  exclusiveWith?: string;
  placeholder?: string;
}

export type RawValue = string | boolean;
export type RawValues = Record<string, RawValue>;

/** LiteLLM's duration strings: `30s`, `30m`, `30h`, `30d`, `2w`, `1mo`. */
export const DURATION = /^[1-9]\d{0,5}(s|m|h|d|w|mo)$/;
const ID = /^[A-Za-z0-9._:@+\-/]{1,128}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const MAX_TEXT = 256;

type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

const ok = (value: unknown): Parsed => ({ ok: true, value });
const bad = (error: string): Parsed => ({ ok: false, error });

/** Parses one non-empty raw value of a field. */
export function parseValue(spec: FieldSpec, raw: RawValue): Parsed {
  if (spec.kind === "bool") return ok(raw === true || raw === "true");
  const s = String(raw).trim();
  switch (spec.kind) {
    case "text":
      return s.length > MAX_TEXT ? bad(`At most ${MAX_TEXT} characters.`) : ok(s);
    case "id":
      return ID.test(s) ? ok(s) : bad("Letters, digits and . _ - : @ + / only, no spaces (at most 128).");
    case "email":
      return EMAIL.test(s) && s.length <= MAX_TEXT ? ok(s) : bad("Enter an email address like name@example.com.");
    case "usd":
      return parseUsd(s);
    case "int":
      return parseWhole(s);
    case "duration":
      return DURATION.test(s) ? ok(s) : bad("A duration like 30s, 30m, 24h, 30d, 2w or 1mo.");
    case "list": {
      const items = s
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== "");
      return ok([...new Set(items)]);
    }
    case "select":
      if (spec.options && !spec.options.some((o) => o.value === s)) return bad("Choose one of the listed values.");
      return ok(s);
    case "json":
      return parseObject(s);
    case "model-int-map":
      return parseModelIntMap(s);
    case "model-budget-map":
      return parseModelBudgetMap(s, spec.variant ?? "key");
  }
}

function parseUsd(s: string): Parsed {
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(s)) return bad("A non-negative amount in USD, like 10 or 0.50.");
  const n = Number(s);
  if (!Number.isFinite(n) || n > 1e12) return bad("That amount is too large.");
  return ok(n);
}

function parseWhole(s: string): Parsed {
  if (!/^\d+$/.test(s)) return bad("A whole number, 0 or more.");
  const n = Number(s);
  if (!Number.isSafeInteger(n)) return bad("That number is too large.");
  return ok(n);
}

function parseObject(s: string): Parsed {
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    return bad(`Not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return bad('A JSON object, like {"team": "research"}.');
  return ok(v);
}

function parseModelIntMap(s: string): Parsed {
  const p = parseObject(s);
  if (!p.ok) return bad(`${p.error} Expected {"model-name": 100}.`);
  for (const [model, n] of Object.entries(p.value as Record<string, unknown>)) {
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
      return bad(`The limit of "${model}" must be a whole number, 0 or more.`);
    }
  }
  return p;
}

function parseModelBudgetMap(s: string, variant: "key" | "budget"): Parsed {
  const p = parseObject(s);
  const example =
    variant === "key"
      ? '{"gpt-4o": {"budget_limit": 10, "time_period": "30d"}}'
      : '{"gpt-4o": {"max_budget": 10, "budget_duration": "30d"}}';
  if (!p.ok) return bad(`${p.error} Expected ${example}.`);
  const [amountKey, periodKey] =
    variant === "key" ? ["budget_limit", "time_period"] : ["max_budget", "budget_duration"];
  for (const [model, entry] of Object.entries(p.value as Record<string, unknown>)) {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return bad(`Expected ${example}.`);
    const e = entry as Record<string, unknown>;
    const amount = e[amountKey];
    const amountNum = typeof amount === "string" ? Number(amount) : amount;
    if (typeof amountNum !== "number" || !Number.isFinite(amountNum) || amountNum < 0) {
      return bad(`"${model}" needs "${amountKey}": a non-negative amount in USD.`);
    }
    const period = e[periodKey];
    if (period !== undefined && period !== null && (typeof period !== "string" || !DURATION.test(period))) {
      return bad(`"${model}": "${periodKey}" must be a duration like 30d.`);
    }
  }
  return p;
}

/** The raw (editable) form of a stored value: numbers as typed, lists comma-joined, objects as JSON. */
export function toRaw(spec: FieldSpec, value: unknown): RawValue {
  if (spec.kind === "bool") return value === true;
  if (value === null || value === undefined) return "";
  if (spec.kind === "list") return Array.isArray(value) ? value.join(", ") : String(value);
  if (spec.kind === "json" || spec.kind === "model-int-map" || spec.kind === "model-budget-map") {
    if (typeof value === "object" && Object.keys(value as object).length === 0) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }
  return String(value);
}

function isEmpty(raw: RawValue | undefined): boolean {
  return raw === undefined || (typeof raw === "string" && raw.trim() === "");
}

export interface FormResult {
  /** The request body fields (only the changed ones when editing). */
  body: Record<string, unknown>;
  /** Errors by field name; empty when the form may be sent. */
  errors: Record<string, string>;
}

/**
 * Validates a form. `create`: every non-empty field goes into the body. `edit`: only fields whose raw value changed
 * from `initial`; a cleared field is sent as `null` (LiteLLM: removes the limit).
 */
export function validateForm(
  specs: readonly FieldSpec[],
  raw: RawValues,
  mode: "create" | "edit" = "create",
  initial: RawValues = {},
): FormResult {
  const body: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const spec of specs) {
    const r = raw[spec.name];
    if (mode === "edit" && spec.createOnly) continue;
    if (mode === "edit" && sameRaw(r, initial[spec.name])) continue;
    if (spec.kind === "bool") {
      if (mode === "edit" || r === true) body[spec.name] = r === true;
      continue;
    }
    if (isEmpty(r)) {
      if (spec.required) errors[spec.name] = `${spec.label} is required.`;
      else if (mode === "edit") body[spec.name] = spec.kind === "list" ? [] : null;
      continue;
    }
    const p = parseValue(spec, r!);
    if (p.ok) body[spec.name] = p.value;
    else errors[spec.name] = p.error;
  }
  // Conflicting fields are refused when both are sent (editing one of them leaves the other as the server has it).
  for (const spec of specs) {
    const other = spec.exclusiveWith;
    if (other && body[spec.name] != null && body[other] != null) {
      const otherSpec = specs.find((s) => s.name === other);
      errors[spec.name] ??= `Set either ${spec.label} or ${otherSpec?.label ?? other}, not both.`;
    }
  }
  if (Object.keys(errors).length > 0) return { body: {}, errors };
  return { body, errors };
}

function sameRaw(a: RawValue | undefined, b: RawValue | undefined): boolean {
  const na = typeof a === "string" ? a.trim() : (a ?? "");
  const nb = typeof b === "string" ? b.trim() : (b ?? "");
  return na === nb;
}

/** The raw values of an entity for an edit form. */
export function rawOf(specs: readonly FieldSpec[], entity: Record<string, unknown>): RawValues {
  const out: RawValues = {};
  for (const s of specs) out[s.name] = toRaw(s, entity[s.name]);
  return out;
}
