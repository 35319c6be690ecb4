import type { GroupBy, SpendDaily } from "./api";

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

/** `group_by` of `/global/spend/report` for each chart grouping, and the list and name fields of its answer. */
export const REPORT_GROUPS: Record<GroupBy, { param: string; list: string; name: string; none: string }> = {
  api_key: { param: "api_key", list: "api_keys", name: "api_key", none: "(master key)" },
  team: { param: "team", list: "teams", name: "team_name", none: "(no team)" },
  model: { param: "model", list: "models", name: "model", none: "(no model)" },
  end_user: { param: "customer", list: "customers", name: "customer", none: "(no end user)" },
};

export type SpendReport = Array<Record<string, unknown> & { group_by_day: string }>;

/**
 * LiteLLM's `/global/spend/report` answer (one entry per day, each with a list of groups) → one series per group over
 * every day of the range (days without spend are 0). `labels` names ids (key hash → alias, team id → name). Pure.
 */
export function reportToDaily(
  report: SpendReport,
  groupBy: GroupBy,
  days: string[],
  labels: ReadonlyMap<string, string> = new Map(),
): SpendDaily {
  const g = REPORT_GROUPS[groupBy];
  const index = new Map(days.map((d, i) => [d, i]));
  const byId = new Map<string, SpendDaily["series"][number]>();
  for (const entry of report) {
    const day = String(entry.group_by_day).slice(0, 10);
    const i = index.get(day);
    if (i === undefined) continue;
    const list = entry[g.list];
    if (!Array.isArray(list)) continue;
    for (const item of list as Record<string, unknown>[]) {
      const raw = item[g.name];
      const id = raw === null || raw === undefined || raw === "" ? "" : String(raw);
      let s = byId.get(id);
      if (s === undefined) {
        s = {
          id,
          label: id === "" ? g.none : (labels.get(id) ?? id),
          spend: days.map(() => 0),
          requests: days.map(() => 0),
        };
        byId.set(id, s);
      }
      s.spend[i]! += Number(item.total_spend ?? 0);
      s.requests[i]! += Number(item.total_requests ?? 0);
    }
  }
  return { days, series: [...byId.values()] };
}
