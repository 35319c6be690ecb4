import type { ComponentChildren } from "preact";
import type { ApiError } from "../api";

/** An API error shown where it happened (role=alert). */
export function ErrorBox({ error, what }: { error: ApiError | undefined | null; what?: string }) {
  if (!error) return null;
  return (
    <div class="form-error" role="alert">
      {what ? `${what}: ` : ""}
      {error.message}
      {error.status ? <span class="muted"> ({error.status})</span> : null}
    </div>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="page-header">
      <h1 tabIndex={-1} id="page-title">
        {title}
      </h1>
      <div class="page-tools">{children}</div>
    </div>
  );
}

/** Previous / next paging with "Page n of m". */
export function Pager(props: {
  page: number;
  pages: number;
  total?: number;
  onPage: (p: number) => void;
  label: string;
}) {
  const pages = Math.max(1, props.pages);
  return (
    <nav class="pager" aria-label={`${props.label} pages`}>
      <button type="button" disabled={props.page <= 1} onClick={() => props.onPage(props.page - 1)}>
        Previous
      </button>
      <span aria-live="polite">
        Page {props.page} of {pages}
        {props.total !== undefined ? ` · ${props.total} in all` : ""}
      </span>
      <button type="button" disabled={props.page >= pages} onClick={() => props.onPage(props.page + 1)}>
        Next
      </button>
    </nav>
  );
}

export function Badge({ tone, children }: { tone: "ok" | "warn" | "bad" | "muted"; children: ComponentChildren }) {
  return <span class={`badge ${tone}`}>{children}</span>;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/** A usage bar: share of a limit used, with its text for screen readers. */
export function UsageBar({ value, max, label }: { value: number; max: number | null; label: string }) {
  const pct = max === null ? 0 : max <= 0 ? (value > 0 ? 100 : 0) : Math.min(100, (value / max) * 100);
  const tone = pct >= 100 ? "bad" : pct >= 80 ? "warn" : "ok";
  return (
    // biome-ignore lint/a11y/useSemanticElements: a styled bar; <meter> cannot be styled the same in every browser
    <div
      class={`usage ${tone}`}
      role="meter"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={max ?? 0}
      aria-valuenow={value}
    >
      <div class="usage-fill" style={{ width: `${pct}%` }} />
    </div>
  );
}
