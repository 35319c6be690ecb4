import { useState } from "preact/hooks";
import { Crud } from "../components/Crud";
import { PageHeader } from "../components/common";
import { useSession } from "../context";
import { limit, usd } from "../format";
import { useAsync } from "../hooks";
import { canAdminister, ROLE_LABELS, type Role } from "../permissions";
import { USER_SPECS } from "../specs";
import { rawOf } from "../validate";

type User = Record<string, unknown> & { user_id: string };
const PAGE_SIZE = 25;

export function UsersPage() {
  const { api, me, notify } = useSession();
  const [page, setPage] = useState(1);
  const users = useAsync(() => api.listUsers({ page, page_size: PAGE_SIZE }), [api, page]);
  const admin = canAdminister(me);
  return (
    <>
      <PageHeader title="Users" />
      <Crud<User>
        noun="user"
        rows={users.data?.users as User[] | undefined}
        error={users.error}
        loading={users.loading}
        reload={users.reload}
        notify={notify}
        paging={{ page, pages: users.data?.total_pages ?? 1, total: users.data?.total ?? 0, onPage: setPage }}
        rowKey={(u) => u.user_id}
        rowLabel={(u) => u.user_id}
        specs={USER_SPECS}
        rawOf={(u) => rawOf(USER_SPECS, u)}
        canCreate={admin}
        canEdit={() => admin}
        canDelete={() => admin}
        columns={[
          {
            label: "User",
            render: (u) => (
              <>
                <strong>{u.user_id}</strong>
                {typeof u.user_email === "string" && <div class="muted small">{u.user_email}</div>}
              </>
            ),
          },
          { label: "Role", render: (u) => ROLE_LABELS[u.user_role as Role] ?? String(u.user_role ?? "—") },
          {
            label: "Spend / budget",
            class: "num",
            render: (u) => `${usd(Number(u.spend ?? 0))} / ${u.max_budget == null ? "∞" : usd(Number(u.max_budget))}`,
          },
          {
            label: "Limits",
            render: (u) => (
              <span class="small">
                {limit(u.rpm_limit as number | null)} rpm · {limit(u.tpm_limit as number | null)} tpm
              </span>
            ),
          },
          {
            label: "Teams",
            render: (u) =>
              Array.isArray(u.teams)
                ? u.teams.map((t) => (typeof t === "string" ? t : (t as { team_id: string }).team_id)).join(", ") || "—"
                : "—",
          },
        ]}
        create={async (body) => {
          const r = await api.post<{ key?: string }>("/user/new", { auto_create_key: false, ...body });
          return r.key;
        }}
        update={(u, body) => api.post("/user/update", { ...body, user_id: u.user_id })}
        remove={(u) => api.post("/user/delete", { user_ids: [u.user_id] })}
      />
    </>
  );
}
