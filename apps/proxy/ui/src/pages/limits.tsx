import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ApiError, LiveLimits } from "../api";
import { Empty, ErrorBox, PageHeader, UsageBar } from "../components/common";
import { useSession } from "../context";
import { count, dateTime, timeLeft, usd } from "../format";
import { asApiError, useAsync, useNow } from "../hooks";
import { hashOf } from "../route";

const REFRESH_MS = 2000;

const TYPE_LABELS: Record<string, string> = {
  requests: "Requests / min",
  tokens: "Tokens / min",
  max_parallel_requests: "In flight",
};

const SCOPE_LABELS: Record<string, string> = {
  api_key: "Key",
  key: "Key",
  team: "Team",
  user: "User",
  team_member: "Team member",
  end_user: "End user",
  organization: "Organization",
  model_per_key: "Key × model",
  model_per_team: "Team × model",
  global: "Proxy",
};

export function scopeLabel(scope: string, model?: string | null): string {
  const base = SCOPE_LABELS[scope] ?? scope;
  return model ? `${base} (${model})` : base;
}

/** Live usage against every limit and budget of a key or team, refreshed every 2 s while the tab is visible. */
export function LimitsPage() {
  const { api, me, params, navigate } = useSession();
  const key = params.get("key") ?? "";
  const teamId = params.get("team_id") ?? "";
  const keys = useAsync(() => api.listKeys({ page: 1, size: 100 }).catch(() => null), [api]);
  const teams = useAsync(() => api.listTeams().catch(() => []), [api]);
  const [data, setData] = useState<{ live: LiveLimits; offset: number; at: number } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [auto, setAuto] = useState(true);
  const now = useNow(1000);
  const seq = useRef(0);
  const subject = key ? { key } : teamId ? { team_id: teamId } : null;

  useEffect(() => {
    setData(null);
    setError(null);
    if (!subject) return;
    let stopped = false;
    const n = ++seq.current;
    const load = async () => {
      if (document.hidden) return;
      try {
        const live = await api.limits(subject);
        if (!stopped && n === seq.current) {
          setData({ live, offset: live.now - Date.now(), at: Date.now() });
          setError(null);
        }
      } catch (err) {
        if (!stopped && n === seq.current) setError(asApiError(err));
      }
    };
    load();
    const t = auto ? setInterval(load, REFRESH_MS) : undefined;
    return () => {
      stopped = true;
      if (t) clearInterval(t);
    };
  }, [api, key, teamId, auto]);

  const keyOptions = useMemo(
    () =>
      (keys.data?.keys ?? [])
        .filter((k): k is Exclude<typeof k, string> => typeof k === "object")
        .map((k) => ({ value: k.token ?? "", label: k.key_alias || k.key_name || k.token?.slice(0, 10) || "key" })),
    [keys.data],
  );
  const serverNow = now + (data?.offset ?? 0);
  const resetIn = (at: number | null) => (at === null ? "never" : timeLeft(at - serverNow));

  return (
    <>
      <PageHeader title="Live limits" />
      <form class="toolbar" onSubmit={(e) => e.preventDefault()} aria-label="Choose a key or team">
        <div class="field inline">
          <label for="limits-key">Key</label>
          <select
            id="limits-key"
            value={key}
            onChange={(e) => navigate(hashOf("limits", { key: e.currentTarget.value }))}
          >
            <option value="">—</option>
            {keyOptions.map((o) => (
              <option key={o.value} value={o.value}>
                {o.label}
              </option>
            ))}
            {key && !keyOptions.some((o) => o.value === key) && <option value={key}>{key.slice(0, 12)}…</option>}
          </select>
        </div>
        <div class="field inline">
          <label for="limits-team">or team</label>
          <select
            id="limits-team"
            value={teamId}
            onChange={(e) => navigate(hashOf("limits", { team_id: e.currentTarget.value }))}
          >
            <option value="">—</option>
            {(teams.data ?? [])
              .filter((t) => me.role !== "internal_user" || me.teams.includes(t.team_id))
              .map((t) => (
                <option key={t.team_id} value={t.team_id}>
                  {t.team_alias || t.team_id}
                </option>
              ))}
          </select>
        </div>
        <div class="field inline field-check">
          <input id="limits-auto" type="checkbox" checked={auto} onChange={(e) => setAuto(e.currentTarget.checked)} />
          <label for="limits-auto">Refresh every {REFRESH_MS / 1000} s</label>
        </div>
        <span class="muted small" aria-live="off" data-testid="limits-updated">
          {data ? `Updated ${dateTime(data.at)}` : ""}
        </span>
      </form>
      <ErrorBox error={error} what="Could not read the limits" />
      {!subject && <Empty>Choose a key or a team to see its usage against each limit and budget.</Empty>}
      {data && (
        <>
          <h2>
            {data.live.subject.kind === "key" ? "Key" : "Team"} {data.live.subject.label ?? data.live.subject.id}
          </h2>
          <section class="panel" aria-labelledby="live-limits-title">
            <h3 id="live-limits-title">Rate limits</h3>
            {data.live.limits.length === 0 ? (
              <Empty>No rate limits apply.</Empty>
            ) : (
              <table data-testid="live-limits">
                <thead>
                  <tr>
                    <th scope="col">Scope</th>
                    <th scope="col">Limit</th>
                    <th scope="col" class="num">
                      Used / limit
                    </th>
                    <th scope="col" class="bar-col">
                      Usage
                    </th>
                    <th scope="col" class="num">
                      Remaining
                    </th>
                    <th scope="col">Resets in</th>
                  </tr>
                </thead>
                <tbody>
                  {data.live.limits.map((l) => {
                    const label = `${scopeLabel(l.scope, l.model)} ${TYPE_LABELS[l.type] ?? l.type}`;
                    return (
                      <tr key={`${l.scope}:${l.model ?? ""}:${l.type}`} data-type={l.type} data-scope={l.scope}>
                        <td>{scopeLabel(l.scope, l.model)}</td>
                        <td>{TYPE_LABELS[l.type] ?? l.type}</td>
                        <td class="num" data-testid="used">
                          {count(l.used)} / {count(l.limit)}
                        </td>
                        <td class="bar-col">
                          <UsageBar value={l.used} max={l.limit} label={label} />
                        </td>
                        <td class="num">{count(l.remaining)}</td>
                        <td>{l.type === "max_parallel_requests" && l.used === 0 ? "—" : resetIn(l.reset_at)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            )}
          </section>
          <section class="panel" aria-labelledby="live-budgets-title">
            <h3 id="live-budgets-title">Budgets</h3>
            {data.live.budgets.length === 0 ? (
              <Empty>No budgets apply.</Empty>
            ) : (
              <table data-testid="live-budgets">
                <thead>
                  <tr>
                    <th scope="col">Scope</th>
                    <th scope="col" class="num">
                      Spend / budget
                    </th>
                    <th scope="col" class="bar-col">
                      Usage
                    </th>
                    <th scope="col" class="num">
                      Held by requests in flight
                    </th>
                    <th scope="col">Period</th>
                    <th scope="col">Resets in</th>
                  </tr>
                </thead>
                <tbody>
                  {data.live.budgets.map((b) => (
                    <tr key={`${b.scope}:${b.model ?? ""}`} data-scope={b.scope}>
                      <td>{scopeLabel(b.scope, b.model)}</td>
                      <td class="num" data-testid="spend">
                        {usd(b.spend)} / {b.max_budget === null ? "∞" : usd(b.max_budget)}
                      </td>
                      <td class="bar-col">
                        <UsageBar value={b.spend} max={b.max_budget} label={`${scopeLabel(b.scope, b.model)} budget`} />
                      </td>
                      <td class="num">{usd(b.reserved)}</td>
                      <td>{b.budget_duration ?? "—"}</td>
                      <td>{resetIn(b.reset_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </>
      )}
      {keys.error && <ErrorBox error={keys.error as ApiError} />}
    </>
  );
}
