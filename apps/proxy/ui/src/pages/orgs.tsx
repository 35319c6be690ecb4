import { Crud } from "../components/Crud";
import { PageHeader } from "../components/common";
import { useSession } from "../context";
import { usd } from "../format";
import { useAsync } from "../hooks";
import { canAdminister } from "../permissions";
import { ORG_SPECS } from "../specs";
import { rawOf } from "../validate";

type Org = Record<string, unknown> & { organization_id: string };

/** Budget fields live in the organization's budget row (`litellm_budget_table`). */
export function flattenBudget<T extends Record<string, unknown>>(row: T): T {
  const b = (row.litellm_budget_table ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...row };
  for (const k of ["max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests"]) {
    if (out[k] === undefined || out[k] === null) out[k] = b[k] ?? null;
  }
  return out as T;
}

export function OrgsPage() {
  const { api, me, notify } = useSession();
  const orgs = useAsync(() => api.listOrgs(), [api]);
  const admin = canAdminister(me);
  return (
    <>
      <PageHeader title="Organizations" />
      <Crud<Org>
        noun="organization"
        rows={orgs.data?.map((o) => flattenBudget(o as Org))}
        error={orgs.error}
        loading={orgs.loading}
        reload={orgs.reload}
        notify={notify}
        clientPaging
        filterText={(o) => `${o.organization_alias ?? ""} ${o.organization_id}`}
        rowKey={(o) => o.organization_id}
        rowLabel={(o) => String(o.organization_alias ?? o.organization_id)}
        specs={ORG_SPECS}
        rawOf={(o) => rawOf(ORG_SPECS, o)}
        canCreate={admin}
        canEdit={() => admin}
        canDelete={() => admin}
        columns={[
          {
            label: "Organization",
            render: (o) => (
              <>
                <strong>{String(o.organization_alias ?? "—")}</strong>
                <div class="mono muted small">{o.organization_id}</div>
              </>
            ),
          },
          {
            label: "Spend / budget",
            class: "num",
            render: (o) => `${usd(Number(o.spend ?? 0))} / ${o.max_budget == null ? "∞" : usd(Number(o.max_budget))}`,
          },
          { label: "Period", render: (o) => String(o.budget_duration ?? "—") },
          {
            label: "Models",
            render: (o) => (Array.isArray(o.models) && o.models.length ? o.models.join(", ") : "all"),
          },
          { label: "Teams", class: "num", render: (o) => (Array.isArray(o.teams) ? o.teams.length : "—") },
        ]}
        create={(body) => api.post("/organization/new", body).then(() => undefined)}
        update={(o, body) => api.post("/organization/update", { ...body, organization_id: o.organization_id })}
        remove={(o) => api.post("/organization/delete", { organization_ids: [o.organization_id] })}
      />
    </>
  );
}
