import { Crud } from "../components/Crud";
import { PageHeader } from "../components/common";
import { useSession } from "../context";
import { dateTime, limit, usd } from "../format";
import { useAsync } from "../hooks";
import { canAdminister } from "../permissions";
import { BUDGET_SPECS } from "../specs";
import { rawOf } from "../validate";

type Budget = Record<string, unknown> & { budget_id: string };

export function BudgetsPage() {
  const { api, me, notify } = useSession();
  const list = useAsync(() => api.listBudgets(), [api]);
  const admin = canAdminister(me);
  return (
    <>
      <PageHeader title="Budgets" />
      <p class="muted">Reusable budgets: link one to keys and end users by its id (budget_id).</p>
      <Crud<Budget>
        noun="budget"
        rows={list.data as Budget[] | undefined}
        error={list.error}
        loading={list.loading}
        reload={list.reload}
        notify={notify}
        clientPaging
        filterText={(b) => b.budget_id}
        rowKey={(b) => b.budget_id}
        rowLabel={(b) => b.budget_id}
        specs={BUDGET_SPECS}
        rawOf={(b) => rawOf(BUDGET_SPECS, b)}
        canCreate={admin}
        canEdit={() => admin}
        canDelete={() => admin}
        columns={[
          { label: "Budget", render: (b) => <strong class="mono">{b.budget_id}</strong> },
          { label: "Max", class: "num", render: (b) => (b.max_budget == null ? "∞" : usd(Number(b.max_budget))) },
          { label: "Soft", class: "num", render: (b) => (b.soft_budget == null ? "—" : usd(Number(b.soft_budget))) },
          { label: "Period", render: (b) => String(b.budget_duration ?? "—") },
          {
            label: "Limits",
            render: (b) => (
              <span class="small">
                {limit(b.rpm_limit as number | null)} rpm · {limit(b.tpm_limit as number | null)} tpm ·{" "}
                {limit(b.max_parallel_requests as number | null)} parallel
              </span>
            ),
          },
          { label: "Resets", render: (b) => <span class="small">{dateTime(b.budget_reset_at as string | null)}</span> },
        ]}
        create={(body) => api.post("/budget/new", body).then(() => undefined)}
        update={(b, body) => api.post("/budget/update", { ...body, budget_id: b.budget_id })}
        remove={(b) => api.post("/budget/delete", { id: b.budget_id })}
      />
    </>
  );
}
