import { TollgateError } from "@tollgate/core";

/**
 * Time-zone arithmetic on top of `Intl.DateTimeFormat` (no tz database dependency).
 *
 * "Local ms" below means a wall-clock time written as if it were UTC: `Date.UTC(y, m, d, h, mi, s)` of the
 * local calendar fields. `wall(t) = t + offset(t)`.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/**
 * Checks an IANA time-zone name and returns its canonical form.
 * @throws TollgateError `INVALID_ARGUMENT` for an unknown zone.
 */
export function checkTimeZone(timeZone: unknown): string {
  if (typeof timeZone !== "string" || timeZone.length === 0) {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `timeZone must be an IANA zone name such as "UTC", got ${JSON.stringify(timeZone)}`,
    );
  }
  try {
    return formatterFor(timeZone).resolvedOptions().timeZone;
  } catch (cause) {
    throw new TollgateError("INVALID_ARGUMENT", `unknown time zone ${JSON.stringify(timeZone)}`, { cause });
  }
}

/** Offset of `timeZone` from UTC at instant `t`, in ms (positive east of Greenwich). */
export function offsetAt(t: number, timeZone: string): number {
  if (timeZone === "UTC") return 0;
  const fields: Record<string, number> = {};
  for (const p of formatterFor(timeZone).formatToParts(t)) {
    if (p.type !== "literal") fields[p.type] = Number(p.value);
  }
  const local = Date.UTC(
    fields.year ?? 1970,
    (fields.month ?? 1) - 1,
    fields.day ?? 1,
    fields.hour ?? 0,
    fields.minute ?? 0,
    fields.second ?? 0,
  );
  const floored = t - (((t % 1000) + 1000) % 1000);
  return local - floored;
}

/**
 * The first instant `u >= from` at which the local clock shows `target` or later, assuming it shows an earlier
 * time at `from`. Handles one offset change in between: a wall time skipped by a spring-forward change is reached
 * at the change itself; a wall time repeated by a fall-back change is reached at its first occurrence.
 */
export function firstReach(target: number, from: number, timeZone: string): number {
  const o1 = offsetAt(from, timeZone);
  const u = Math.max(from, target - o1);
  if (timeZone === "UTC" || offsetAt(u, timeZone) === o1) return u;
  // The offset changes in (from, u]: find the first instant with the new offset.
  let lo = from;
  let hi = u;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (offsetAt(mid, timeZone) === o1) lo = mid;
    else hi = mid;
  }
  const o2 = offsetAt(hi, timeZone);
  return hi + o2 >= target ? hi : target - o2;
}
