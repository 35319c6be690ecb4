import { useMemo, useState } from "preact/hooks";
import type { Api, GroupBy } from "../api";
import { StackedBars } from "../components/Chart";
import { Empty, ErrorBox, PageHeader } from "../components/common";
import { useSession } from "../context";
import { count, daysBetween, isoDay, usd } from "../format";
import { useAsync } from "../hooks";
import { REPORT_GROUPS, reportToDaily, topSeries } from "../spend";

const GROUPS: { value: GroupBy; label: string }[] = [
  { value: "api_key", label: "Key" },
  { value: "team", label: "Team" },
  { value: "model", label: "Model" },
  { value: "end_user", label: "End user" },
];

const fmtRequests = (n: number) => count(n);

/** Names for the ids of a grouping: key hash → alias, team id → team name (best effort: ids stay when unknown). */
async function labelsFor(api: Api, groupBy: GroupBy): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  try {
    if (groupBy === "api_key") {
      const list = await api.listKeys({ page: 1, size: 100 });
      for (const k of list.keys) {
        if (typeof k === "object" && k.token) m.set(k.token, k.key_alias || k.key_name || k.token.slice(0, 10));
      }
    } else if (groupBy === "team") {
      for (const t of await api.listTeams()) m.set(t.team_id, t.team_alias || t.team_id);
    }
  } catch {
    // names are a nicety: the chart shows ids without them
  }
  return m;
}

export function SpendPage() {
  const { api } = useSession();
  const today = isoDay(Date.now());
  const [range, setRange] = useState({ start: isoDay(Date.now() - 6 * 86_400_000), end: today });
  const [draft, setDraft] = useState(range);
  const [rangeError, setRangeError] = useState<string | null>(null);
  const [groupBy, setGroupBy] = useState<GroupBy>("api_key");
  const data = useAsync(async () => {
    const [report, labels] = await Promise.all([
      api.spendReport({ start_date: range.start, end_date: range.end, group_by: REPORT_GROUPS[groupBy].param }),
      labelsFor(api, groupBy),
    ]);
    return reportToDaily(report, groupBy, daysBetween(range.start, range.end), labels);
  }, [api, range, groupBy]);
  const series = useMemo(() => (data.data ? topSeries(data.data) : []), [data.data]);
  const spendSeries = useMemo(() => series.map((s) => ({ label: s.label, values: s.spend })), [series]);
  const reqSeries = useMemo(() => series.map((s) => ({ label: s.label, values: s.requests })), [series]);
  const days = data.data?.days ?? [];
  const totalSpend = series.reduce((t, s) => t + s.totalSpend, 0);
  const totalRequests = series.reduce((t, s) => t + s.totalRequests, 0);
  const groupLabel = GROUPS.find((g) => g.value === groupBy)!.label;

  const apply = (e: Event) => {
    e.preventDefault();
    if (!/^\d{4}-\d{2}-\d{2}$/.test(draft.start) || !/^\d{4}-\d{2}-\d{2}$/.test(draft.end)) {
      setRangeError("Enter both dates.");
      return;
    }
    if (draft.end < draft.start) {
      setRangeError("The end date is before the start date.");
      return;
    }
    if ((Date.parse(draft.end) - Date.parse(draft.start)) / 86_400_000 > 366) {
      setRangeError("Choose at most one year.");
      return;
    }
    setRangeError(null);
    setRange(draft);
  };

  return (
    <>
      <PageHeader title="Spend" />
      <form class="toolbar" onSubmit={apply} noValidate aria-label="Date range">
        <div class="field inline">
          <label for="spend-start">From</label>
          <input
            id="spend-start"
            type="date"
            value={draft.start}
            max={today}
            aria-invalid={rangeError ? true : undefined}
            aria-describedby={rangeError ? "spend-range-error" : undefined}
            onInput={(e) => setDraft({ ...draft, start: e.currentTarget.value })}
          />
        </div>
        <div class="field inline">
          <label for="spend-end">To</label>
          <input
            id="spend-end"
            type="date"
            value={draft.end}
            aria-invalid={rangeError ? true : undefined}
            aria-describedby={rangeError ? "spend-range-error" : undefined}
            onInput={(e) => setDraft({ ...draft, end: e.currentTarget.value })}
          />
        </div>
        <button type="submit">Show</button>
        <div class="field inline">
          <label for="spend-group">Group by</label>
          <select id="spend-group" value={groupBy} onChange={(e) => setGroupBy(e.currentTarget.value as GroupBy)}>
            {GROUPS.map((g) => (
              <option key={g.value} value={g.value}>
                {g.label}
              </option>
            ))}
          </select>
        </div>
        <button type="button" onClick={data.reload}>
          Refresh
        </button>
      </form>
      {rangeError && (
        <p class="field-error" id="spend-range-error" role="alert">
          {rangeError}
        </p>
      )}
      <ErrorBox error={data.error} what="Could not load spend" />
      <div class="cards">
        <div class="card">
          <div class="muted small">Spend</div>
          <div class="big" data-testid="total-spend">
            {usd(totalSpend)}
          </div>
        </div>
        <div class="card">
          <div class="muted small">Requests</div>
          <div class="big" data-testid="total-requests">
            {count(totalRequests)}
          </div>
        </div>
        <div class="card">
          <div class="muted small">{groupLabel}s</div>
          <div class="big">{count(data.data?.series.length ?? 0)}</div>
        </div>
      </div>
      {data.data && series.length === 0 ? (
        <Empty>
          No requests between {range.start} and {range.end}.
        </Empty>
      ) : (
        <>
          <section class="panel" aria-labelledby="chart-spend">
            <h2 id="chart-spend">Spend per day by {groupLabel.toLowerCase()}</h2>
            <StackedBars days={days} series={spendSeries} format={usd} label={`Spend per day by ${groupLabel}`} />
          </section>
          <section class="panel" aria-labelledby="chart-requests">
            <h2 id="chart-requests">Requests per day by {groupLabel.toLowerCase()}</h2>
            <StackedBars
              days={days}
              series={reqSeries}
              format={fmtRequests}
              label={`Requests per day by ${groupLabel}`}
            />
          </section>
        </>
      )}
      {series.length > 0 && (
        <section class="panel" aria-labelledby="spend-table-title">
          <h2 id="spend-table-title">Totals by {groupLabel.toLowerCase()}</h2>
          <div class="table-wrap">
            <table data-testid="spend-table">
              <thead>
                <tr>
                  <th scope="col">{groupLabel}</th>
                  <th scope="col" class="num">
                    Spend
                  </th>
                  <th scope="col" class="num">
                    Requests
                  </th>
                </tr>
              </thead>
              <tbody>
                {series.map((s) => (
                  <tr key={s.id}>
                    <th scope="row">{s.label}</th>
                    <td class="num">{usd(s.totalSpend)}</td>
                    <td class="num">{count(s.totalRequests)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      )}
    </>
  );
}
