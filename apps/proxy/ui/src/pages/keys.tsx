import { useMemo, useState } from "preact/hooks";
import type { KeyRecord } from "../api";
import { Crud } from "../components/Crud";
import { Badge, PageHeader } from "../components/common";
import { ConfirmDialog, SecretDialog } from "../components/Dialog";
import { useSession } from "../context";
import { count, dateTime, limit, usd } from "../format";
import { useAsync } from "../hooks";
import { canKey, isAdmin, seesAll } from "../permissions";
import { hashOf } from "../route";
import { KEY_GROUPS, keySpecs } from "../specs";
import { rawOf } from "../validate";

const SIZE = 20;

/** A key row normalized: per-model limits read from metadata (where LiteLLM stores them). */
export function normalizeKey(k: KeyRecord): KeyRecord {
  const md = (k.metadata ?? {}) as Record<string, unknown>;
  const { model_rpm_limit, model_tpm_limit, ...rest } = md;
  return {
    ...k,
    model_rpm_limit: (k.model_rpm_limit ?? model_rpm_limit ?? null) as Record<string, number> | null,
    model_tpm_limit: (k.model_tpm_limit ?? model_tpm_limit ?? null) as Record<string, number> | null,
    metadata: rest,
  };
}

export function keyLabel(k: KeyRecord): string {
  return k.key_alias || k.key_name || (k.token ? `${k.token.slice(0, 10)}…` : "key");
}

function keyStatus(k: KeyRecord) {
  if (k.blocked) return <Badge tone="bad">Blocked</Badge>;
  if (k.expires && Date.parse(k.expires) < Date.now()) return <Badge tone="warn">Expired</Badge>;
  return <Badge tone="ok">Active</Badge>;
}

export function KeysPage() {
  const { api, me, params, navigate, notify } = useSession();
  const [page, setPage] = useState(1);
  const [search, setSearch] = useState(params.get("key_alias") ?? "");
  const [applied, setApplied] = useState(search);
  const teamFilter = params.get("team_id") ?? "";
  const [blocking, setBlocking] = useState<KeyRecord | null>(null);
  const [regenerating, setRegenerating] = useState<KeyRecord | null>(null);
  const [secret, setSecret] = useState<string | null>(null);

  const list = useAsync(
    () => api.listKeys({ page, size: SIZE, key_alias: applied || undefined, team_id: teamFilter || undefined }),
    [api, page, applied, teamFilter],
  );
  const teams = useAsync(() => api.listTeams().catch(() => []), [api]);
  const teamName = useMemo(() => {
    const m = new Map<string, string>();
    for (const t of teams.data ?? []) m.set(t.team_id, t.team_alias || t.team_id);
    return m;
  }, [teams.data]);
  const teamOptions = useMemo(
    () =>
      (teams.data ?? [])
        .filter((t) => isAdmin(me) || me.adminTeams.includes(t.team_id) || me.teams.includes(t.team_id))
        .map((t) => ({ value: t.team_id, label: t.team_alias || t.team_id })),
    [teams.data, me],
  );
  const specs = useMemo(() => keySpecs(teamOptions, isAdmin(me)), [teamOptions, me]);
  const rows = useMemo(
    () => list.data?.keys.filter((k): k is KeyRecord => typeof k === "object").map(normalizeKey),
    [list.data],
  );

  return (
    <>
      <PageHeader title="Keys" />
      <Crud<KeyRecord>
        noun="key"
        rows={rows}
        error={list.error}
        loading={list.loading}
        reload={list.reload}
        notify={notify}
        rowKey={(k) => k.token ?? keyLabel(k)}
        rowLabel={keyLabel}
        specs={specs}
        groups={KEY_GROUPS}
        rawOf={(k) => rawOf(specs, k as Record<string, unknown>)}
        canCreate={canKey(me, "create")}
        canEdit={(k) => canKey(me, "update", k)}
        canDelete={(k) => canKey(me, "delete", k)}
        paging={{
          page: list.data?.current_page ?? page,
          pages: list.data?.total_pages ?? 1,
          total: list.data?.total_count ?? 0,
          onPage: setPage,
        }}
        toolbar={
          <>
            <form
              class="field inline"
              onSubmit={(e) => {
                e.preventDefault();
                setPage(1);
                setApplied(search.trim());
              }}
            >
              <label for="key-search">Find by alias</label>
              <input
                id="key-search"
                type="search"
                placeholder="exact alias"
                value={search}
                onInput={(e) => setSearch(e.currentTarget.value)}
              />
              <button type="submit">Search</button>
            </form>
            {(seesAll(me) || teamOptions.length > 0) && (
              <div class="field inline">
                <label for="key-team-filter">Team</label>
                <select
                  id="key-team-filter"
                  value={teamFilter}
                  onChange={(e) => {
                    setPage(1);
                    navigate(hashOf("keys", { team_id: e.currentTarget.value, key_alias: applied }));
                  }}
                >
                  <option value="">All teams</option>
                  {(seesAll(me)
                    ? (teams.data ?? []).map((t) => ({ value: t.team_id, label: t.team_alias || t.team_id }))
                    : teamOptions
                  ).map((o) => (
                    <option key={o.value} value={o.value}>
                      {o.label}
                    </option>
                  ))}
                </select>
              </div>
            )}
          </>
        }
        columns={[
          {
            label: "Alias",
            render: (k) => (
              <>
                <strong class="nowrap">{k.key_alias || "—"}</strong>
                <div class="mono muted small">{k.key_name}</div>
              </>
            ),
          },
          { label: "Team", render: (k) => (k.team_id ? (teamName.get(k.team_id) ?? k.team_id) : "—") },
          { label: "Owner", render: (k) => k.user_id ?? "—" },
          {
            label: "Spend / budget",
            class: "num",
            render: (k) => (
              <>
                {usd(k.spend ?? 0)} / {k.max_budget === null || k.max_budget === undefined ? "∞" : usd(k.max_budget)}
                {k.budget_duration && <div class="muted small">per {k.budget_duration}</div>}
              </>
            ),
          },
          {
            label: "Limits",
            render: (k) => (
              <span class="small">
                {limit(k.rpm_limit)} rpm · {limit(k.tpm_limit)} tpm · {limit(k.max_parallel_requests)} parallel
              </span>
            ),
          },
          { label: "Models", render: (k) => (k.models?.length ? k.models.join(", ") : "all") },
          { label: "Status", render: keyStatus },
          { label: "Created", render: (k) => <span class="small">{dateTime(k.created_at)}</span> },
        ]}
        actions={(k) => (
          <>
            <a
              class="button"
              href={hashOf("limits", { key: k.token })}
              aria-label={`Live limits of key ${keyLabel(k)}`}
            >
              Limits
            </a>
            {canKey(me, "block", k) && (
              <button
                type="button"
                aria-label={`${k.blocked ? "Unblock" : "Block"} key ${keyLabel(k)}`}
                onClick={() => setBlocking(k)}
              >
                {k.blocked ? "Unblock" : "Block"}
              </button>
            )}
            {canKey(me, "regenerate", k) && (
              <button type="button" aria-label={`Regenerate key ${keyLabel(k)}`} onClick={() => setRegenerating(k)}>
                Regenerate
              </button>
            )}
          </>
        )}
        create={async (body) => {
          const created = await api.generateKey(body);
          return created.key;
        }}
        update={(k, body) => {
          // LiteLLM keeps per-model limits inside metadata: a new metadata object must carry them on.
          if ("metadata" in body) {
            if (!("model_rpm_limit" in body) && k.model_rpm_limit) body.model_rpm_limit = k.model_rpm_limit;
            if (!("model_tpm_limit" in body) && k.model_tpm_limit) body.model_tpm_limit = k.model_tpm_limit;
          }
          return api.updateKey(k.token!, body);
        }}
        remove={(k) => api.deleteKeys([k.token!])}
      />
      {blocking && (
        <ConfirmDialog
          title={blocking.blocked ? "Unblock key?" : "Block key?"}
          message={
            blocking.blocked ? (
              <>
                Unblock <strong>{keyLabel(blocking)}</strong>? Requests with it are accepted again.
              </>
            ) : (
              <>
                Block <strong>{keyLabel(blocking)}</strong>? Every request with it is refused (401) until it is
                unblocked.
              </>
            )
          }
          confirmLabel={blocking.blocked ? "Unblock key" : "Block key"}
          onClose={() => setBlocking(null)}
          onConfirm={async () => {
            await api.blockKey(blocking.token!, !blocking.blocked);
            notify(`Key ${keyLabel(blocking)} ${blocking.blocked ? "unblocked" : "blocked"}.`);
            list.reload();
          }}
        />
      )}
      {regenerating && (
        <ConfirmDialog
          title="Regenerate key?"
          message={
            <>
              Regenerate <strong>{keyLabel(regenerating)}</strong>? The current secret stops working at once; its
              limits, budget and spend stay.
            </>
          }
          confirmLabel="Regenerate key"
          onClose={() => setRegenerating(null)}
          onConfirm={async () => {
            const r = await api.regenerateKey(regenerating.token!);
            list.reload();
            setSecret(r.key);
          }}
        />
      )}
      {secret && <SecretDialog title="Save your new key" secret={secret} onClose={() => setSecret(null)} />}
      <p class="muted small">
        {list.data ? `${count(list.data.total_count)} ${list.data.total_count === 1 ? "key" : "keys"}` : ""}
        {applied ? ` matching “${applied}”` : ""}
      </p>
    </>
  );
}
