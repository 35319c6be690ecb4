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
/** LiteLLM's `duration_in_seconds` regex, matched at the start only: `1hr` reads as `1h`, `30min` as `30m`. */
const LITELLM_PREFIX = /^(\d+)(mo|[smhdw]?)/;

/** Options of {@link parseDuration}. */
export interface ParseDurationOptions {
  /**
   * Called when a duration is accepted only because LiteLLM's parser reads its leading `<count><unit>` and ignores
   * the rest (`"1hr"` -> `1h`, `"30min"` -> `30m`, `"2days"` -> `2d`). @default none (the form is accepted silently)
   */
  onWarning?: (message: string, readAs: Duration) => void;
}

/**
 * Parses LiteLLM's duration grammar: `<n><unit>` with unit `s`, `m`, `h`, `d`, `w` or `mo` (`30s`, `30m`, `30h`,
 * `30d`, `2w`, `1mo`). `null`, `undefined`, and the strings `""`, `"none"`, `"null"` in any case and with surrounding
 * spaces (`"None"`, `" NULL "`) mean "never reset" and return `null`, as in LiteLLM.
 *
 * Text after a leading `<count><unit>` is ignored the way LiteLLM's `duration_in_seconds` ignores it (its regex
 * `(\d+)(mo|[smhdw]?)` is matched at the start only), so durations stored by LiteLLM load: `"1hr"` is `1h`,
 * `"30min"` is `30m`, `"1month"` is `1mo`; each such reading is reported to `options.onWarning`.
 *
 * @throws TollgateError `INVALID_DURATION` for anything else: a bare number (`"30"`), no or an unknown unit
 *   (`"30x"`, `"1y"`, `"1 d"`, `"1M"`), a negative or zero count, a fraction (`"1.5h"`), or a non-string.
 */
export function parseDuration(input: string | null | undefined, options?: ParseDurationOptions): Duration | null {
  if (input === null || input === undefined) return null;
  if (typeof input !== "string") {
    throw new TollgateError(
      "INVALID_DURATION",
      `budget duration must be a string such as "30d", got ${JSON.stringify(input)}`,
    );
  }
  const text = input.trim();
  const lower = text.toLowerCase();
  if (lower === "" || lower === "none" || lower === "null") return null;
  let m = GRAMMAR.exec(text);
  let exact = true;
  if (m === null) {
    m = LITELLM_PREFIX.exec(text);
    exact = false;
  }
  if (m === null || m[2] === "") {
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
  const duration: Duration = { count, unit: m[2] as DurationUnit };
  if (!exact) {
    options?.onWarning?.(
      `budget duration ${JSON.stringify(input)} read as "${formatDuration(duration)}": LiteLLM reads only the leading <count><unit> and ignores the rest`,
      duration,
    );
  }
  return duration;
}

/** Canonical text of a duration (`{30, "d"}` -> `"30d"`), or `"never"`. */
export function formatDuration(d: Duration | null | undefined): string {
  return d === null || d === undefined ? "never" : `${d.count}${d.unit}`;
}
