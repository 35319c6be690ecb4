import { useState } from "preact/hooks";
import { Crud } from "../components/Crud";
import { Badge, PageHeader } from "../components/common";
import { ConfirmDialog } from "../components/Dialog";
import { useSession } from "../context";
import { limit, usd } from "../format";
import { useAsync } from "../hooks";
import { canAdminister } from "../permissions";
import { CUSTOMER_SPECS } from "../specs";
import { rawOf } from "../validate";
import { flattenBudget } from "./orgs";

type Customer = Record<string, unknown> & { user_id: string };

export function CustomersPage() {
  const { api, me, notify } = useSession();
  const list = useAsync(() => api.listCustomers(), [api]);
  const [blocking, setBlocking] = useState<Customer | null>(null);
  const admin = canAdminister(me);
  const label = (c: Customer) => String(c.alias ?? c.user_id);
  return (
    <>
      <PageHeader title="End users" />
      <p class="muted">
        End users are the <code>user</code> your application sends with each request (or the{" "}
        <code>x-litellm-end-user-id</code> header).
      </p>
      <Crud<Customer>
        noun="end user"
        rows={list.data?.map((c) => flattenBudget(c as Customer))}
        error={list.error}
        loading={list.loading}
        reload={list.reload}
        notify={notify}
        clientPaging
        filterText={(c) => `${c.alias ?? ""} ${c.user_id}`}
        rowKey={(c) => c.user_id}
        rowLabel={label}
        specs={CUSTOMER_SPECS}
        rawOf={(c) => rawOf(CUSTOMER_SPECS, c)}
        canCreate={admin}
        canEdit={() => admin}
        canDelete={() => admin}
        columns={[
          {
            label: "End user",
            render: (c) => (
              <>
                <strong>{c.user_id}</strong>
                {typeof c.alias === "string" && <div class="muted small">{c.alias}</div>}
              </>
            ),
          },
          {
            label: "Spend / budget",
            class: "num",
            render: (c) => `${usd(Number(c.spend ?? 0))} / ${c.max_budget == null ? "∞" : usd(Number(c.max_budget))}`,
          },
          { label: "Period", render: (c) => String(c.budget_duration ?? "—") },
          {
            label: "Limits",
            render: (c) => (
              <span class="small">
                {limit(c.rpm_limit as number | null)} rpm · {limit(c.tpm_limit as number | null)} tpm
              </span>
            ),
          },
          {
            label: "Status",
            render: (c) => (c.blocked ? <Badge tone="bad">Blocked</Badge> : <Badge tone="ok">Active</Badge>),
          },
        ]}
        actions={(c) =>
          admin && (
            <button
              type="button"
              aria-label={`${c.blocked ? "Unblock" : "Block"} end user ${label(c)}`}
              onClick={() => setBlocking(c)}
            >
              {c.blocked ? "Unblock" : "Block"}
            </button>
          )
        }
        create={(body) => api.post("/customer/new", body).then(() => undefined)}
        update={(c, body) => api.post("/customer/update", { ...body, user_id: c.user_id })}
        remove={(c) => api.post("/customer/delete", { user_ids: [c.user_id] })}
      />
      {blocking && (
        <ConfirmDialog
          title={blocking.blocked ? "Unblock end user?" : "Block end user?"}
          message={
            <>
              {blocking.blocked ? "Unblock" : "Block"} <strong>{label(blocking)}</strong>?
            </>
          }
          confirmLabel={blocking.blocked ? "Unblock end user" : "Block end user"}
          onClose={() => setBlocking(null)}
          onConfirm={async () => {
            await api.post(blocking.blocked ? "/customer/unblock" : "/customer/block", {
              user_ids: [blocking.user_id],
            });
            list.reload();
          }}
        />
      )}
    </>
  );
}
