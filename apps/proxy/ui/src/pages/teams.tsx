import { useState } from "preact/hooks";
import type { TeamInfo, TeamRecord } from "../api";
import { Crud } from "../components/Crud";
import { Badge, ErrorBox, PageHeader } from "../components/common";
import { ConfirmDialog, Dialog } from "../components/Dialog";
import { EntityForm } from "../components/EntityForm";
import { useSession } from "../context";
import { limit, usd } from "../format";
import { useAsync } from "../hooks";
import { canTeam, isAdmin } from "../permissions";
import { hashOf } from "../route";
import { MEMBER_SPECS, MEMBER_UPDATE_SPECS, TEAM_GROUPS, TEAM_SPECS } from "../specs";
import { rawOf } from "../validate";

export function normalizeTeam(t: TeamRecord): TeamRecord {
  const md = (t.metadata ?? {}) as Record<string, unknown>;
  const { model_rpm_limit, model_tpm_limit, team_member_budget_id: _, ...rest } = md;
  return {
    ...t,
    model_rpm_limit: t.model_rpm_limit ?? model_rpm_limit ?? null,
    model_tpm_limit: t.model_tpm_limit ?? model_tpm_limit ?? null,
    metadata: rest,
  };
}

const teamLabel = (t: TeamRecord) => t.team_alias || t.team_id;

export function TeamsPage() {
  const { api, me, notify } = useSession();
  const teams = useAsync(() => api.listTeams(), [api]);
  const [members, setMembers] = useState<TeamRecord | null>(null);
  const [blocking, setBlocking] = useState<TeamRecord | null>(null);
  const rows = teams.data
    ?.map(normalizeTeam)
    .filter(
      (t) =>
        isAdmin(me) || me.role !== "internal_user" || me.teams.includes(t.team_id) || me.adminTeams.includes(t.team_id),
    );
  return (
    <>
      <PageHeader title="Teams" />
      <Crud<TeamRecord>
        noun="team"
        rows={rows}
        error={teams.error}
        loading={teams.loading}
        reload={teams.reload}
        notify={notify}
        clientPaging
        filterText={(t) => `${t.team_alias ?? ""} ${t.team_id}`}
        rowKey={(t) => t.team_id}
        rowLabel={teamLabel}
        specs={TEAM_SPECS}
        groups={TEAM_GROUPS}
        rawOf={(t) => rawOf(TEAM_SPECS, t)}
        canCreate={canTeam(me, "create")}
        canEdit={(t) => canTeam(me, "update", t.team_id)}
        canDelete={(t) => canTeam(me, "delete", t.team_id)}
        columns={[
          {
            label: "Team",
            render: (t) => (
              <>
                <strong>{t.team_alias || "—"}</strong>
                <div class="mono muted small">{t.team_id}</div>
              </>
            ),
          },
          {
            label: "Spend / budget",
            class: "num",
            render: (t) => (
              <>
                {usd(t.spend ?? 0)} / {t.max_budget === null || t.max_budget === undefined ? "∞" : usd(t.max_budget)}
                {t.budget_duration && <div class="muted small">per {t.budget_duration}</div>}
              </>
            ),
          },
          {
            label: "Limits",
            render: (t) => (
              <span class="small">
                {limit(t.rpm_limit)} rpm · {limit(t.tpm_limit)} tpm · {limit(t.max_parallel_requests)} parallel
              </span>
            ),
          },
          { label: "Members", class: "num", render: (t) => t.members_with_roles?.length ?? 0 },
          { label: "Models", render: (t) => (t.models?.length ? t.models.join(", ") : "all") },
          {
            label: "Status",
            render: (t) => (t.blocked ? <Badge tone="bad">Blocked</Badge> : <Badge tone="ok">Active</Badge>),
          },
        ]}
        actions={(t) => (
          <>
            <button type="button" aria-label={`Members of team ${teamLabel(t)}`} onClick={() => setMembers(t)}>
              Members
            </button>
            <a class="button" href={hashOf("keys", { team_id: t.team_id })} aria-label={`Keys of team ${teamLabel(t)}`}>
              Keys
            </a>
            <a
              class="button"
              href={hashOf("limits", { team_id: t.team_id })}
              aria-label={`Live limits of team ${teamLabel(t)}`}
            >
              Limits
            </a>
            {canTeam(me, "block", t.team_id) && (
              <button
                type="button"
                aria-label={`${t.blocked ? "Unblock" : "Block"} team ${teamLabel(t)}`}
                onClick={() => setBlocking(t)}
              >
                {t.blocked ? "Unblock" : "Block"}
              </button>
            )}
          </>
        )}
        create={(body) => api.post("/team/new", body).then(() => undefined)}
        update={(t, body) => api.post("/team/update", { ...body, team_id: t.team_id })}
        remove={(t) => api.post("/team/delete", { team_ids: [t.team_id] })}
      />
      {members && <MembersDialog team={members} onClose={() => setMembers(null)} onChanged={teams.reload} />}
      {blocking && (
        <ConfirmDialog
          title={blocking.blocked ? "Unblock team?" : "Block team?"}
          message={
            <>
              {blocking.blocked ? "Unblock" : "Block"} team <strong>{teamLabel(blocking)}</strong>?{" "}
              {blocking.blocked ? "Its keys work again." : "Every key of the team is refused until it is unblocked."}
            </>
          }
          confirmLabel={blocking.blocked ? "Unblock team" : "Block team"}
          onClose={() => setBlocking(null)}
          onConfirm={async () => {
            await api.post(blocking.blocked ? "/team/unblock" : "/team/block", { team_id: blocking.team_id });
            notify(`Team ${teamLabel(blocking)} ${blocking.blocked ? "unblocked" : "blocked"}.`);
            teams.reload();
          }}
        />
      )}
    </>
  );
}

interface MemberRow {
  user_id: string;
  user_email: string | null;
  role: string;
  spend: number | null;
  max_budget_in_team: number | null;
  rpm_limit: number | null;
  tpm_limit: number | null;
}

/** Members with their role, spend and budget in the team (from `/team/info`). */
export function membersOf(info: TeamInfo): MemberRow[] {
  const byUser = new Map((info.team_memberships ?? []).map((m) => [m.user_id, m]));
  return (info.team_info.members_with_roles ?? [])
    .filter((m) => m.user_id)
    .map((m) => {
      const ms = byUser.get(m.user_id!);
      const b = ms?.litellm_budget_table ?? null;
      return {
        user_id: m.user_id!,
        user_email: m.user_email ?? null,
        role: m.role,
        spend: ms?.spend ?? null,
        max_budget_in_team: b?.max_budget ?? null,
        rpm_limit: b?.rpm_limit ?? null,
        tpm_limit: b?.tpm_limit ?? null,
      };
    });
}

function MembersDialog({ team, onClose, onChanged }: { team: TeamRecord; onClose: () => void; onChanged: () => void }) {
  const { api, me, notify } = useSession();
  const info = useAsync(() => api.teamInfo(team.team_id), [api, team.team_id]);
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<MemberRow | null>(null);
  const [removing, setRemoving] = useState<MemberRow | null>(null);
  const may = canTeam(me, "members", team.team_id);
  const rows = info.data ? membersOf(info.data) : [];
  const changed = () => {
    info.reload();
    onChanged();
  };
  return (
    <Dialog title={`Members of ${teamLabel(team)}`} onClose={onClose} wide>
      <ErrorBox error={info.error} what="Could not load the team" />
      <div class="table-wrap">
        <table aria-busy={info.loading}>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Role</th>
              <th scope="col" class="num">
                Spend in team
              </th>
              <th scope="col" class="num">
                Budget in team
              </th>
              <th scope="col">Limits</th>
              {may && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {rows.map((m) => (
              <tr key={m.user_id}>
                <td>
                  {m.user_id}
                  {m.user_email && <div class="muted small">{m.user_email}</div>}
                </td>
                <td>{m.role === "admin" ? <Badge tone="warn">Team admin</Badge> : "Member"}</td>
                <td class="num">{m.spend === null ? "—" : usd(m.spend)}</td>
                <td class="num">{m.max_budget_in_team === null ? "∞" : usd(m.max_budget_in_team)}</td>
                <td class="small">
                  {limit(m.rpm_limit)} rpm · {limit(m.tpm_limit)} tpm
                </td>
                {may && (
                  <td>
                    <div class="row-actions">
                      <button type="button" aria-label={`Edit member ${m.user_id}`} onClick={() => setEditing(m)}>
                        Edit
                      </button>
                      <button
                        type="button"
                        class="danger-text"
                        aria-label={`Remove member ${m.user_id}`}
                        onClick={() => setRemoving(m)}
                      >
                        Remove
                      </button>
                    </div>
                  </td>
                )}
              </tr>
            ))}
            {!info.loading && rows.length === 0 && (
              <tr>
                <td colSpan={may ? 6 : 5} class="empty">
                  No members yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {may && !adding && !editing && (
        <div class="actions">
          <button type="button" class="primary" onClick={() => setAdding(true)}>
            Add member
          </button>
        </div>
      )}
      {adding && (
        <section aria-label="Add member">
          <h3>Add member</h3>
          <EntityForm
            id="member-add"
            specs={MEMBER_SPECS}
            mode="create"
            initial={{ role: "user" }}
            submitLabel="Add member"
            onCancel={() => setAdding(false)}
            onSubmit={async (body) => {
              const { max_budget_in_team, ...member } = body;
              await api.post("/team/member_add", {
                team_id: team.team_id,
                member,
                ...(max_budget_in_team !== undefined ? { max_budget_in_team } : {}),
              });
              setAdding(false);
              notify(`Member ${String(member.user_id)} added.`);
              changed();
            }}
          />
        </section>
      )}
      {editing && (
        <section aria-label={`Edit member ${editing.user_id}`}>
          <h3>Edit {editing.user_id}</h3>
          <EntityForm
            id="member-edit"
            specs={MEMBER_UPDATE_SPECS}
            mode="edit"
            initial={rawOf(MEMBER_UPDATE_SPECS, editing as unknown as Record<string, unknown>)}
            submitLabel="Save member"
            onCancel={() => setEditing(null)}
            onSubmit={async (body) => {
              if (Object.keys(body).length > 0) {
                await api.post("/team/member_update", { team_id: team.team_id, user_id: editing.user_id, ...body });
              }
              setEditing(null);
              notify(`Member ${editing.user_id} saved.`);
              changed();
            }}
          />
        </section>
      )}
      {removing && (
        <ConfirmDialog
          title="Remove member?"
          message={
            <>
              Remove <strong>{removing.user_id}</strong> from {teamLabel(team)}?
            </>
          }
          confirmLabel="Remove member"
          onClose={() => setRemoving(null)}
          onConfirm={async () => {
            await api.post("/team/member_delete", { team_id: team.team_id, user_id: removing.user_id });
            notify(`Member ${removing.user_id} removed.`);
            changed();
          }}
        />
      )}
    </Dialog>
  );
}
