import type { ModelEntry } from "../api";
import { ErrorBox, PageHeader } from "../components/common";
import { useSession } from "../context";
import { limit, usd } from "../format";
import { useAsync } from "../hooks";

/** Deployments grouped by public model name, in config order. */
export function groupModels(entries: ModelEntry[]): [string, ModelEntry[]][] {
  const m = new Map<string, ModelEntry[]>();
  for (const e of entries) {
    const list = m.get(e.model_name);
    if (list) list.push(e);
    else m.set(e.model_name, [e]);
  }
  return [...m];
}

const num = (v: unknown): number | null => (typeof v === "number" ? v : null);

export function ModelsPage() {
  const { api } = useSession();
  const models = useAsync(() => api.models(), [api]);
  const groups = groupModels(models.data?.data ?? []);
  return (
    <>
      <PageHeader title="Models" />
      <ErrorBox error={models.error} what="Could not load the models" />
      <div class="table-wrap">
        <table aria-busy={models.loading} data-testid="models-table">
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Deployment</th>
              <th scope="col">Upstream</th>
              <th scope="col" class="num">
                RPM
              </th>
              <th scope="col" class="num">
                TPM
              </th>
              <th scope="col" class="num">
                Input / 1M tokens
              </th>
              <th scope="col" class="num">
                Output / 1M tokens
              </th>
              <th scope="col">Access groups</th>
            </tr>
          </thead>
          <tbody>
            {groups.flatMap(([name, deps]) =>
              deps.map((d, i) => {
                const p = d.litellm_params ?? {};
                const info = d.model_info ?? {};
                const inCost = num(p.input_cost_per_token) ?? num(info.input_cost_per_token);
                const outCost = num(p.output_cost_per_token) ?? num(info.output_cost_per_token);
                const groupsOf = Array.isArray(info.access_groups) ? (info.access_groups as string[]).join(", ") : "—";
                return (
                  <tr key={`${name}:${i}`}>
                    {i === 0 && (
                      <th scope="rowgroup" rowSpan={deps.length}>
                        {name}
                        {deps.length > 1 && <div class="muted small">{deps.length} deployments</div>}
                      </th>
                    )}
                    <td class="mono small">{String(p.model ?? "—")}</td>
                    <td class="small">
                      {String(p.api_base ?? (String(p.model ?? "").startsWith("mock/") ? "built-in mock" : "—"))}
                    </td>
                    <td class="num">{limit(num(p.rpm))}</td>
                    <td class="num">{limit(num(p.tpm))}</td>
                    <td class="num">{inCost === null ? "—" : usd(inCost * 1e6)}</td>
                    <td class="num">{outCost === null ? "—" : usd(outCost * 1e6)}</td>
                    <td>{groupsOf}</td>
                  </tr>
                );
              }),
            )}
          </tbody>
        </table>
      </div>
    </>
  );
}
