import { useState } from "preact/hooks";
import type { SpendLogRow } from "../api";
import { Badge, ErrorBox, PageHeader, Pager } from "../components/common";
import { useSession } from "../context";
import { count, dateTime, isoDay, usd } from "../format";
import { useAsync } from "../hooks";

const PAGE_SIZE = 25;

interface Filters {
  start_date: string;
  end_date: string;
  key_alias: string;
  team_id: string;
  model: string;
  end_user: string;
  request_id: string;
  status_filter: string;
}

const FILTER_FIELDS: { name: keyof Filters; label: string }[] = [
  { name: "key_alias", label: "Key alias" },
  { name: "team_id", label: "Team id" },
  { name: "model", label: "Model" },
  { name: "end_user", label: "End user" },
  { name: "request_id", label: "Request id" },
];

/** The key of a log row: its alias (top level or LiteLLM's `metadata.user_api_key_alias`), else the hash's start. */
function keyOf(r: SpendLogRow): string {
  const md = (r.metadata ?? {}) as Record<string, unknown>;
  const alias = r.key_alias ?? (typeof md.user_api_key_alias === "string" ? md.user_api_key_alias : null);
  if (alias) return alias;
  return r.api_key ? `${r.api_key.slice(0, 8)}…` : "—";
}

export function LogsPage() {
  const { api } = useSession();
  const initial: Filters = {
    start_date: isoDay(Date.now() - 6 * 86_400_000),
    end_date: isoDay(Date.now()),
    key_alias: "",
    team_id: "",
    model: "",
    end_user: "",
    request_id: "",
    status_filter: "",
  };
  const [draft, setDraft] = useState<Filters>(initial);
  const [applied, setApplied] = useState<Filters>(initial);
  const [page, setPage] = useState(1);
  const [error, setError] = useState<string | null>(null);
  const logs = useAsync(
    () =>
      api.spendLogs({
        // dates as YYYY-MM-DD: the end date is inclusive (LiteLLM's rule)
        ...applied,
        page,
        page_size: PAGE_SIZE,
      }),
    [api, applied, page],
  );
  const teams = useAsync(() => api.listTeams().catch(() => []), [api]);
  const teamNames = new Map((teams.data ?? []).map((t) => [t.team_id, t.team_alias || t.team_id]));
  const set = (k: keyof Filters, v: string) => setDraft({ ...draft, [k]: v });
  const submit = (e: Event) => {
    e.preventDefault();
    if (draft.end_date < draft.start_date) {
      setError("The end date is before the start date.");
      return;
    }
    setError(null);
    setPage(1);
    setApplied({ ...draft });
  };
  return (
    <>
      <PageHeader title="Logs" />
      <form class="filters" onSubmit={submit} noValidate aria-label="Filters">
        <div class="field">
          <label for="logs-start">From</label>
          <input
            id="logs-start"
            type="date"
            value={draft.start_date}
            onInput={(e) => set("start_date", e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="logs-end">To</label>
          <input
            id="logs-end"
            type="date"
            value={draft.end_date}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? "logs-error" : undefined}
            onInput={(e) => set("end_date", e.currentTarget.value)}
          />
        </div>
        {FILTER_FIELDS.map((f) => (
          <div class="field" key={f.name}>
            <label for={`logs-${f.name}`}>{f.label}</label>
            <input
              id={`logs-${f.name}`}
              type="search"
              value={draft[f.name]}
              onInput={(e) => set(f.name, e.currentTarget.value)}
            />
          </div>
        ))}
        <div class="field">
          <label for="logs-status">Status</label>
          <select
            id="logs-status"
            value={draft.status_filter}
            onChange={(e) => set("status_filter", e.currentTarget.value)}
          >
            <option value="">Any</option>
            <option value="success">Success</option>
            <option value="failure">Failure</option>
          </select>
        </div>
        <div class="actions">
          <button type="submit" class="primary">
            Apply filters
          </button>
        </div>
      </form>
      {error && (
        <p class="field-error" id="logs-error" role="alert">
          {error}
        </p>
      )}
      <ErrorBox error={logs.error} what="Could not load logs" />
      <div class="table-wrap">
        <table aria-busy={logs.loading} data-testid="logs-table">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Status</th>
              <th scope="col">Model</th>
              <th scope="col">Key</th>
              <th scope="col">Team</th>
              <th scope="col">End user</th>
              <th scope="col" class="num">
                Tokens (in / out)
              </th>
              <th scope="col" class="num">
                Spend
              </th>
              <th scope="col">Request id</th>
            </tr>
          </thead>
          <tbody>
            {(logs.data?.data ?? []).map((r: SpendLogRow) => (
              <tr key={r.request_id}>
                <td class="small nowrap">{dateTime(r.startTime)}</td>
                <td>
                  {r.status === "failure" ? (
                    <Badge tone="bad">failure</Badge>
                  ) : (
                    <Badge tone="ok">{r.status ?? "success"}</Badge>
                  )}
                </td>
                <td class="nowrap">{r.model_group || r.model || "—"}</td>
                <td class="nowrap">{keyOf(r)}</td>
                <td>{r.team_id ? (teamNames.get(r.team_id) ?? r.team_id) : "—"}</td>
                <td class="nowrap">{r.end_user || r.user || "—"}</td>
                <td class="num">
                  {count(r.prompt_tokens ?? 0)} / {count(r.completion_tokens ?? 0)}
                </td>
                <td class="num">{usd(r.spend ?? 0)}</td>
                <td class="mono small">{r.request_id}</td>
              </tr>
            ))}
            {!logs.loading && (logs.data?.data.length ?? 0) === 0 && (
              <tr>
                <td colSpan={9} class="empty">
                  No requests match these filters.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager label="Logs" page={page} pages={logs.data?.total_pages ?? 1} total={logs.data?.total} onPage={setPage} />
    </>
  );
}
