import { TollgateError } from "./errors.js";
import type { Denial, LimitStatus, LimitType } from "./types.js";

/** A status as header builders read it; its `windowMs` (when the engine provides it) adds the IETF `w` parameter. */
export type HeaderStatus = LimitStatus;

/** Which header families {@link rateLimitHeaders} writes. Every family is on by default. */
export interface RateLimitHeaderOptions {
  /**
   * The clock (ms since epoch) that reset durations are measured from.
   * @default denial.now when a denial is given, else Date.now()
   */
  now?: number;
  /** LiteLLM's `x-ratelimit-{scope}-{remaining|limit}-{type}` (and `rate_limit_type` / `reset_at` on denials). @default true */
  litellm?: boolean;
  /** OpenAI's `x-ratelimit-{limit|remaining|reset}-{requests|tokens}` for the tightest limit. @default true */
  openai?: boolean;
  /** IETF `ratelimit-policy` / `ratelimit` (draft-ietf-httpapi-ratelimit-headers). @default true */
  ietf?: boolean;
}

/** The JSON body of a 429, in the OpenAI error shape LiteLLM's proxy uses. */
export interface DenialBody {
  error: { message: string; type: "rate_limit_error"; param: null; code: "429" };
}

function pad2(n: number): string {
  return n < 10 ? "0" + n : String(n);
}

function pad3(n: number): string {
  return n < 10 ? "00" + n : n < 100 ? "0" + n : String(n);
}

function checkTime(ms: unknown, what: string): asserts ms is number {
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new TollgateError("INVALID_ARGUMENT", `${what} must be a finite time in ms, got ${String(ms)}`);
  }
}

/**
 * Formats a time as LiteLLM's `YYYY-MM-DD HH:MM:SS` in true UTC (seconds truncated, like Python's strftime).
 * @throws {TollgateError} `INVALID_ARGUMENT` for a non-finite time.
 */
export function formatUtcTimestamp(ms: number): string {
  checkTime(ms, "time");
  const d = new Date(ms);
  return (
    d.getUTCFullYear() +
    "-" +
    pad2(d.getUTCMonth() + 1) +
    "-" +
    pad2(d.getUTCDate()) +
    " " +
    pad2(d.getUTCHours()) +
    ":" +
    pad2(d.getUTCMinutes()) +
    ":" +
    pad2(d.getUTCSeconds())
  );
}

function checkObject(value: unknown, what: string): void {
  if (typeof value !== "object" || value === null) {
    throw new TollgateError("INVALID_ARGUMENT", `${what} must be an object, got ${String(value)}`);
  }
}

/**
 * LiteLLM's 429 message, exactly:
 * `Rate limit exceeded for {scope}: {value}. Limit type: {type}. Current limit: {limit}, Remaining: {remaining}. Limit resets at: {YYYY-MM-DD HH:MM:SS} UTC`,
 * with `denial.resetAt` in true UTC (LiteLLM's older releases printed local time labelled UTC) and remaining
 * never below 0.
 * @throws {TollgateError} `INVALID_ARGUMENT` when `denial.resetAt` is not a finite time.
 */
export function formatRateLimitMessage(denial: Denial): string {
  checkObject(denial, "denial");
  return (
    "Rate limit exceeded for " +
    denial.scope +
    ": " +
    denial.value +
    ". Limit type: " +
    denial.type +
    ". Current limit: " +
    denial.limit +
    ", Remaining: " +
    Math.max(0, denial.remaining) +
    ". Limit resets at: " +
    formatUtcTimestamp(denial.resetAt) +
    " UTC"
  );
}

/** The 429 response body: `{ error: { message, type: "rate_limit_error", param: null, code: "429" } }`. */
export function denialBody(denial: Denial): DenialBody {
  return { error: { message: formatRateLimitMessage(denial), type: "rate_limit_error", param: null, code: "429" } };
}

/**
 * Seconds a denied client should wait: ceil(`retryAfterMs` / 1000), at least 1 (a `retry-after: 0` invites an
 * immediate retry storm). This is the exact time until capacity frees, not LiteLLM's whole window.
 * @throws {TollgateError} `INVALID_ARGUMENT` when `retryAfterMs` is negative or not finite.
 */
export function retryAfterSeconds(denial: Pick<Denial, "retryAfterMs">): number {
  checkObject(denial, "denial");
  const ms = denial.retryAfterMs;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
    throw new TollgateError("INVALID_ARGUMENT", `retryAfterMs must be a non-negative number, got ${String(ms)}`);
  }
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * A duration the way OpenAI's `x-ratelimit-reset-*` headers write it (Go duration syntax): `20ms` below a second,
 * else `[Nh][Nm]N[.fff]s` with hours and minutes only when needed, e.g. `1s`, `6m0s`, `1h0m0s`, `2m59.56s`.
 * Negative durations print as `0s`.
 */
export function formatResetDuration(ms: number): string {
  checkTime(ms, "duration");
  const total = Math.max(0, Math.round(ms));
  if (total === 0) return "0s";
  if (total < 1000) return total + "ms";
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const whole = Math.floor(millis / 1000);
  const frac = millis % 1000;
  let secs = String(whole);
  if (frac > 0) secs += "." + (frac % 100 === 0 ? frac / 100 : frac % 10 === 0 ? pad2(frac / 10) : pad3(frac));
  if (hours > 0) return hours + "h" + minutes + "m" + secs + "s";
  if (minutes > 0) return minutes + "m" + secs + "s";
  return secs + "s";
}

function resetSeconds(resetAt: number, now: number): number {
  return Math.max(0, Math.ceil((resetAt - now) / 1000));
}

function policyUnit(type: LimitType): string {
  if (type === "tokens") return ';qu="tokens"';
  if (type === "max_parallel_requests") return ';qu="concurrency"';
  return "";
}

/**
 * Picks the status the OpenAI headers report for one type: the denial when it is of that type (it comes first),
 * else the smallest remaining (first on ties).
 */
function pick(current: HeaderStatus | undefined, s: HeaderStatus, denial: Denial | undefined): HeaderStatus {
  if (current === undefined) return s;
  if (current === denial) return current;
  return s.remaining < current.remaining ? s : current;
}

/**
 * Response headers (lower-case names) for the statuses of an admission, or of a denial when `denial` is given.
 *
 * - `retry-after` (denials only): {@link retryAfterSeconds} of the denial.
 * - LiteLLM: `x-ratelimit-{scope}-remaining-{type}` and `x-ratelimit-{scope}-limit-{type}` for every status, the
 *   denial first; when two statuses share a name the first wins (LiteLLM's streaming behaviour). On denials also
 *   LiteLLM's `rate_limit_type` and `reset_at` (`YYYY-MM-DD HH:MM:SS UTC`).
 * - OpenAI: `x-ratelimit-limit-{requests|tokens}`, `x-ratelimit-remaining-…`, `x-ratelimit-reset-…` for the
 *   tightest enforced limit of each type (smallest remaining; the denial's limit for its own type), reset as
 *   {@link formatResetDuration} of `resetAt - now`.
 * - IETF (draft-ietf-httpapi-ratelimit-headers-10, structured fields): one item per enforced limit, in status order,
 *   named `"{scope}-{type}"`, e.g. `ratelimit-policy: "api_key-requests";q=100;w=60` and
 *   `ratelimit: "api_key-requests";r=42;t=17` (`t` = whole seconds until reset, rounded up). Every limit is listed,
 *   not only the tightest, so a client can pace each quota; `w` (window seconds, rounded up) appears when the
 *   status carries `windowMs` (for the denial: its own, else that of the matching status);
 *   tokens use `qu="tokens"` (not a registered unit) and in-flight gauges `qu="concurrency"`.
 *
 * Statuses with `enforced: false` (shadow mode, an inactive condition) appear in the LiteLLM headers only: they never
 * decide `retry-after`, the OpenAI headers or the IETF items, since they cannot throttle the client.
 *
 * @throws {TollgateError} `INVALID_ARGUMENT` for a non-finite `now`, `resetAt` or a bad `retryAfterMs`.
 */
export function rateLimitHeaders(
  statuses: readonly HeaderStatus[],
  denial?: Denial,
  options?: RateLimitHeaderOptions,
): Record<string, string> {
  if (!Array.isArray(statuses)) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `statuses must be an array (admission.statuses), got ${String(statuses)}`,
    );
  }
  if (denial !== undefined) checkObject(denial, "denial");
  const now = options?.now ?? denial?.now ?? Date.now();
  checkTime(now, "now");
  const litellm = options?.litellm !== false;
  const openai = options?.openai !== false;
  const ietf = options?.ietf !== false;
  const h: Record<string, string> = {};
  if (denial !== undefined) {
    h["retry-after"] = String(retryAfterSeconds(denial));
    if (litellm) {
      h.rate_limit_type = denial.type;
      h.reset_at = formatUtcTimestamp(denial.resetAt) + " UTC";
    }
  }

  let requests: HeaderStatus | undefined;
  let tokens: HeaderStatus | undefined;
  let policy = "";
  let current = "";
  const count = statuses.length + (denial === undefined ? 0 : 1);
  const denialWindowMs = denial === undefined ? undefined : (denial.windowMs ?? windowOf(statuses, denial));
  for (let i = 0; i < count; i++) {
    const s: HeaderStatus = denial === undefined ? statuses[i]! : i === 0 ? denial : statuses[i - 1]!;
    if (seenBefore(statuses, denial, i, s)) continue;
    const name = s.scope + "-" + s.type;
    if (litellm) {
      h["x-ratelimit-" + s.scope + "-remaining-" + s.type] = String(Math.max(0, s.remaining));
      h["x-ratelimit-" + s.scope + "-limit-" + s.type] = String(s.limit);
    }
    if (!s.enforced) continue;
    if (s.type === "requests") requests = pick(requests, s, denial);
    else if (s.type === "tokens") tokens = pick(tokens, s, denial);
    if (ietf) {
      checkTime(s.resetAt, `resetAt of ${name}`);
      const sep = policy === "" ? "" : ", ";
      policy += sep + '"' + name + '";q=' + s.limit + policyUnit(s.type);
      const windowMs = s === denial ? denialWindowMs : s.windowMs;
      if (windowMs !== undefined) {
        checkTime(windowMs, `windowMs of ${name}`);
        policy += ";w=" + Math.ceil(windowMs / 1000);
      }
      current += sep + '"' + name + '";r=' + Math.max(0, s.remaining) + ";t=" + resetSeconds(s.resetAt, now);
    }
  }
  if (openai) {
    if (requests !== undefined) openaiHeaders(h, "requests", requests, now);
    if (tokens !== undefined) openaiHeaders(h, "tokens", tokens, now);
  }
  if (policy !== "") {
    h["ratelimit-policy"] = policy;
    h.ratelimit = current;
  }
  return h;
}

/**
 * Whether a status with the same scope and type comes before position `i` (the denial is position 0 when given).
 * A linear scan: requests carry a handful of statuses, and it allocates nothing.
 */
function seenBefore(
  statuses: readonly HeaderStatus[],
  denial: Denial | undefined,
  i: number,
  s: HeaderStatus,
): boolean {
  if (denial !== undefined && i > 0 && denial.scope === s.scope && denial.type === s.type) return true;
  const end = denial === undefined ? i : i - 1;
  for (let j = 0; j < end; j++) {
    const o = statuses[j]!;
    if (o.scope === s.scope && o.type === s.type) return true;
  }
  return false;
}

/** The window of the status describing the same limit as the denial (a denial need not carry `windowMs`). */
function windowOf(statuses: readonly HeaderStatus[], denial: Denial): number | undefined {
  for (const s of statuses) {
    if (s.scope === denial.scope && s.type === denial.type && s.value === denial.value) return s.windowMs;
  }
  return undefined;
}

function openaiHeaders(h: Record<string, string>, kind: "requests" | "tokens", s: HeaderStatus, now: number): void {
  checkTime(s.resetAt, `resetAt of ${s.scope}-${s.type}`);
  h["x-ratelimit-limit-" + kind] = String(s.limit);
  h["x-ratelimit-remaining-" + kind] = String(Math.max(0, s.remaining));
  h["x-ratelimit-reset-" + kind] = formatResetDuration(s.resetAt - now);
}
