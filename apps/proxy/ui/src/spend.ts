import type { SpendDaily } from "./api";

export interface Series {
  id: string;
  label: string;
  spend: number[];
  requests: number[];
  totalSpend: number;
  totalRequests: number;
}

/** The `max` biggest series by spend (then requests), the rest summed into "Other". Pure. */
export function topSeries(data: SpendDaily, max = 8): Series[] {
  const all: Series[] = data.series.map((s) => ({
    ...s,
    totalSpend: sum(s.spend),
    totalRequests: sum(s.requests),
  }));
  all.sort(
    (a, b) => b.totalSpend - a.totalSpend || b.totalRequests - a.totalRequests || a.label.localeCompare(b.label),
  );
  if (all.length <= max) return all;
  const kept = all.slice(0, max - 1);
  const rest = all.slice(max - 1);
  const n = data.days.length;
  const other: Series = {
    id: "__other__",
    label: `Other (${rest.length})`,
    spend: Array.from({ length: n }, (_, i) => sum(rest.map((s) => s.spend[i] ?? 0))),
    requests: Array.from({ length: n }, (_, i) => sum(rest.map((s) => s.requests[i] ?? 0))),
    totalSpend: sum(rest.map((s) => s.totalSpend)),
    totalRequests: sum(rest.map((s) => s.totalRequests)),
  };
  return [...kept, other];
}

function sum(xs: number[]): number {
  let t = 0;
  for (const x of xs) t += x;
  return t;
}
