import { TollgateError } from "@tollgate/core";

/** Duration units of LiteLLM's `budget_duration`: seconds, minutes, hours, days, weeks, months. */
export type DurationUnit = "s" | "m" | "h" | "d" | "w" | "mo";

/** A parsed budget duration such as `30d` -> `{ count: 30, unit: "d" }`. */
export interface Duration {
  /** Positive whole number of units. */
  count: number;
  unit: DurationUnit;
}

/** Milliseconds of one fixed-length unit (months have no fixed length). */
export const UNIT_MS: Record<Exclude<DurationUnit, "mo">, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const GRAMMAR = /^(\d+)(mo|s|m|h|d|w)$/;

/**
 * Parses LiteLLM's duration grammar: `<n><unit>` with unit `s`, `m`, `h`, `d`, `w` or `mo` (`30s`, `30m`, `30h`,
 * `30d`, `2w`, `1mo`). `null`, `undefined`, `""`, `"none"` and `"null"` mean "never reset" and return `null`.
 *
 * @throws TollgateError `INVALID_DURATION` for anything else: a bare number (`"30"`), an unknown unit (`"30x"`),
 *   a negative or zero count, a fractional count or trailing text.
 */
export function parseDuration(input: string | null | undefined): Duration | null {
  if (input === null || input === undefined) return null;
  if (typeof input !== "string") {
    throw new TollgateError(
      "INVALID_DURATION",
      `budget duration must be a string such as "30d", got ${JSON.stringify(input)}`,
    );
  }
  const text = input.trim();
  if (text === "" || text === "none" || text === "null") return null;
  const m = GRAMMAR.exec(text);
  if (m === null) {
    throw new TollgateError(
      "INVALID_DURATION",
      `invalid budget duration ${JSON.stringify(input)}: expected <count><unit> with unit s, m, h, d, w or mo (e.g. "30d", "1mo"), or null/"none" for never`,
    );
  }
  const count = Number(m[1]);
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new TollgateError(
      "INVALID_DURATION",
      `invalid budget duration ${JSON.stringify(input)}: the count must be a positive integer`,
    );
  }
  return { count, unit: m[2] as DurationUnit };
}

/** Canonical text of a duration (`{30, "d"}` -> `"30d"`), or `"never"`. */
export function formatDuration(d: Duration | null): string {
  return d === null ? "never" : `${d.count}${d.unit}`;
}
