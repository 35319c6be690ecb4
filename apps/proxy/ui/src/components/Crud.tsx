import type { ComponentChildren } from "preact";
import { useMemo, useState } from "preact/hooks";
import type { ApiError } from "../api";
import type { FieldSpec, RawValues } from "../validate";
import { ErrorBox, Pager } from "./common";
import { ConfirmDialog, Dialog, SecretDialog } from "./Dialog";
import { EntityForm } from "./EntityForm";

export interface Column<T> {
  label: string;
  render: (row: T) => ComponentChildren;
  class?: string;
}

export interface CrudProps<T> {
  /** Singular noun: "user", "budget". */
  noun: string;
  rows: T[] | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
  columns: Column<T>[];
  rowKey: (row: T) => string;
  rowLabel: (row: T) => string;
  specs: FieldSpec[];
  groups?: [string, string[]][];
  rawOf: (row: T) => RawValues;
  canCreate: boolean;
  canEdit: (row: T) => boolean;
  canDelete: (row: T) => boolean;
  /** Creates; may return a secret to show once (e.g. `/user/new` with a key). */
  create: (body: Record<string, unknown>) => Promise<string | undefined>;
  update: (row: T, body: Record<string, unknown>) => Promise<unknown>;
  remove: (row: T) => Promise<unknown>;
  /** More buttons in a row's actions cell. */
  actions?: (row: T) => ComponentChildren;
  /** Client-side paging and filter (list endpoints that return every row). */
  clientPaging?: boolean;
  /** Server paging: current page, pages and a setter. */
  paging?: { page: number; pages: number; total: number; onPage: (p: number) => void };
  filterText?: (row: T) => string;
  toolbar?: ComponentChildren;
  notify: (text: string) => void;
}

const PAGE = 20;

/** A table of entities with create, edit and delete (with confirmation); the buttons appear only where allowed. */
export function Crud<T>(p: CrudProps<T>) {
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<T | null>(null);
  const [deleting, setDeleting] = useState<T | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [filter, setFilter] = useState("");
  const [page, setPage] = useState(1);
  const noun = p.noun;
  const Noun = noun[0]!.toUpperCase() + noun.slice(1);

  const filtered = useMemo(() => {
    const rows = p.rows ?? [];
    const f = filter.trim().toLowerCase();
    if (!f || !p.filterText) return rows;
    return rows.filter((r) => p.filterText!(r).toLowerCase().includes(f));
  }, [p.rows, filter, p.filterText]);
  const pages = Math.max(1, Math.ceil(filtered.length / PAGE));
  const shown = p.clientPaging
    ? filtered.slice((Math.min(page, pages) - 1) * PAGE, Math.min(page, pages) * PAGE)
    : filtered;
  const anyActions = (p.rows ?? []).some((r) => p.canEdit(r) || p.canDelete(r)) || p.actions !== undefined;

  return (
    <section aria-label={`${Noun}s`}>
      <div class="toolbar">
        {p.filterText && (
          <div class="field inline">
            <label for={`${noun}-filter`}>Search</label>
            <input
              id={`${noun}-filter`}
              type="search"
              value={filter}
              onInput={(e) => {
                setFilter(e.currentTarget.value);
                setPage(1);
              }}
            />
          </div>
        )}
        {p.toolbar}
        {p.canCreate && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New {noun}
          </button>
        )}
      </div>
      <ErrorBox error={p.error} what={`Could not load ${noun}s`} />
      <div class="table-wrap">
        <table aria-busy={p.loading}>
          <thead>
            <tr>
              {p.columns.map((c) => (
                <th key={c.label} scope="col" class={c.class}>
                  {c.label}
                </th>
              ))}
              {anyActions && (
                <th scope="col" class="actions-col">
                  Actions
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {shown.map((row) => (
              <tr key={p.rowKey(row)}>
                {p.columns.map((c) => (
                  <td key={c.label} class={c.class}>
                    {c.render(row)}
                  </td>
                ))}
                {anyActions && (
                  <td class="actions-col">
                    <div class="row-actions">
                      {p.actions?.(row)}
                      {p.canEdit(row) && (
                        <button
                          type="button"
                          aria-label={`Edit ${noun} ${p.rowLabel(row)}`}
                          onClick={() => setEditing(row)}
                        >
                          Edit
                        </button>
                      )}
                      {p.canDelete(row) && (
                        <button
                          type="button"
                          class="danger-text"
                          aria-label={`Delete ${noun} ${p.rowLabel(row)}`}
                          onClick={() => setDeleting(row)}
                        >
                          Delete
                        </button>
                      )}
                    </div>
                  </td>
                )}
              </tr>
            ))}
            {!p.loading && shown.length === 0 && (
              <tr>
                <td colSpan={p.columns.length + (anyActions ? 1 : 0)} class="empty">
                  No {noun}s{filter ? " match" : " yet"}.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {p.clientPaging && filtered.length > PAGE && (
        <Pager label={`${Noun}s`} page={Math.min(page, pages)} pages={pages} total={filtered.length} onPage={setPage} />
      )}
      {p.paging && <Pager label={`${Noun}s`} {...p.paging} />}
      {creating && (
        <Dialog title={`New ${noun}`} onClose={() => setCreating(false)} wide>
          <EntityForm
            id={`new-${noun}`}
            specs={p.specs}
            groups={p.groups}
            mode="create"
            submitLabel={`Create ${noun}`}
            onCancel={() => setCreating(false)}
            onSubmit={async (body) => {
              const s = await p.create(body);
              setCreating(false);
              p.notify(`${Noun} created.`);
              if (typeof s === "string") setSecret(s);
              p.reload();
            }}
          />
        </Dialog>
      )}
      {editing && (
        <Dialog title={`Edit ${noun} ${p.rowLabel(editing)}`} onClose={() => setEditing(null)} wide>
          <EntityForm
            id={`edit-${noun}`}
            specs={p.specs}
            groups={p.groups}
            mode="edit"
            initial={p.rawOf(editing)}
            submitLabel="Save changes"
            onCancel={() => setEditing(null)}
            onSubmit={async (body) => {
              if (Object.keys(body).length > 0) await p.update(editing, body);
              setEditing(null);
              p.notify(`${Noun} saved.`);
              p.reload();
            }}
          />
        </Dialog>
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete ${noun}?`}
          message={
            <>
              Delete {noun} <strong>{p.rowLabel(deleting)}</strong>? This cannot be undone.
            </>
          }
          confirmLabel={`Delete ${noun}`}
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await p.remove(deleting);
            p.notify(`${Noun} deleted.`);
            p.reload();
          }}
        />
      )}
      {secret && <SecretDialog title="Save your new key" secret={secret} onClose={() => setSecret(null)} />}
    </section>
  );
}
