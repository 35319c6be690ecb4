/** Display helpers shared by the pages (pure: unit-tested in Node). */

/** USD with enough decimals to show LLM-sized amounts ($0.000123), two decimals from $1 up. */
export function usd(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  const abs = Math.abs(n);
  const digits = abs === 0 || abs >= 1 ? 2 : abs >= 0.01 ? 4 : 6;
  return n.toLocaleString("en-US", {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: 2,
    maximumFractionDigits: digits,
  });
}

/** An integer count with thousands separators; "—" for none. */
export function count(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Math.round(n).toLocaleString("en-US");
}

/** A limit: "∞" (unlimited) for null. */
export function limit(n: number | null | undefined): string {
  return n === null || n === undefined ? "∞" : count(n);
}

/** Time left, e.g. "45s", "4m 05s", "2h 03m", "3d 04h"; "now" at or below zero. */
export function timeLeft(ms: number): string {
  if (!Number.isFinite(ms)) return "never";
  if (ms <= 0) return "now";
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${pad(h % 24)}h`;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `YYYY-MM-DD` of an instant, in UTC (the spend report's days are UTC days). */
export function isoDay(t: number | Date): string {
  return new Date(t).toISOString().slice(0, 10);
}

/** Every UTC day from `start` to `end` (inclusive, `YYYY-MM-DD`); empty when end < start; at most 400 days. */
export function daysBetween(start: string, end: string): string[] {
  const a = Date.parse(`${start}T00:00:00Z`);
  const b = Date.parse(`${end}T00:00:00Z`);
  if (Number.isNaN(a) || Number.isNaN(b) || b < a) return [];
  const out: string[] = [];
  for (let t = a; t <= b && out.length < 400; t += 86_400_000) out.push(isoDay(t));
  return out;
}

/** A date-time for tables (local time, to the second). */
export function dateTime(v: string | number | null | undefined): string {
  if (v === null || v === undefined || v === "") return "—";
  const t = typeof v === "number" ? v : Date.parse(v);
  if (Number.isNaN(t)) return String(v);
  const d = new Date(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A share 0..1 of a limit used (clamped), 0 for an unlimited one. */
export function share(used: number, max: number | null | undefined): number {
  if (max === null || max === undefined) return 0;
  if (max <= 0) return used > 0 ? 1 : 0;
  return Math.min(1, Math.max(0, used / max));
}
