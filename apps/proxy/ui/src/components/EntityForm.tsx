import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { asApiError } from "../hooks";
import { type FieldSpec, type RawValue, type RawValues, validateForm } from "../validate";
import { Field } from "./Field";

export interface EntityFormProps {
  /** Unique on the page (ids of the controls). */
  id: string;
  specs: readonly FieldSpec[];
  mode: "create" | "edit";
  initial?: RawValues;
  submitLabel: string;
  /** Sends the validated body; throw (an ApiError) to show the server's message. */
  onSubmit: (body: Record<string, unknown>) => Promise<void>;
  onCancel?: () => void;
  /** Fields grouped under headings: `[heading, names[]]`; the rest come first. */
  groups?: [string, string[]][];
}

/**
 * A validated form: checks every field before sending; a server error that names a field (OpenAI's `param`) appears
 * under that field, any other error above the buttons; focus moves to the first problem.
 */
export function EntityForm({
  id,
  specs,
  mode,
  initial = {},
  submitLabel,
  onSubmit,
  onCancel,
  groups,
}: EntityFormProps) {
  const [raw, setRaw] = useState<RawValues>(() => {
    const r: RawValues = {};
    for (const s of specs) r[s.name] = initial[s.name] ?? (s.kind === "bool" ? false : "");
    return r;
  });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);

  useEffect(() => {
    formRef.current
      ?.querySelector<HTMLElement>("input:not([disabled]), select:not([disabled]), textarea:not([disabled])")
      ?.focus();
  }, []);

  const change = (name: string, value: RawValue) => {
    setRaw((r) => ({ ...r, [name]: value }));
    if (errors[name]) setErrors(({ [name]: _, ...rest }) => rest);
  };

  const focusFirstError = (names: string[]) => {
    requestAnimationFrame(() => {
      const form = formRef.current;
      if (!form) return;
      const target = names.length > 0 ? form.querySelector<HTMLElement>(`#${cssId(`${id}-${names[0]}`)}`) : null;
      (target ?? form.querySelector<HTMLElement>(".form-error"))?.focus();
    });
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const { body, errors: errs } = validateForm(specs, raw, mode, initial);
    setFormError(null);
    if (Object.keys(errs).length > 0) {
      setErrors(errs);
      focusFirstError(specs.map((s) => s.name).filter((n) => errs[n]));
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      await onSubmit(body);
    } catch (err) {
      const apiErr = asApiError(err);
      const field = apiErr.param && specs.some((s) => s.name === apiErr.param) ? apiErr.param : null;
      if (field) {
        setErrors({ [field]: apiErr.message });
        focusFirstError([field]);
      } else {
        setFormError(apiErr);
        focusFirstError([]);
      }
    } finally {
      setBusy(false);
    }
  };

  const grouped = new Set((groups ?? []).flatMap(([, names]) => names));
  const render = (s: FieldSpec) => (
    <Field
      key={s.name}
      spec={s}
      idPrefix={id}
      value={raw[s.name] ?? ""}
      error={errors[s.name]}
      disabled={busy || (mode === "edit" && s.createOnly)}
      onChange={change}
    />
  );
  return (
    <form ref={formRef} class="entity-form" onSubmit={submit} noValidate aria-busy={busy}>
      <div class="fields">{specs.filter((s) => !grouped.has(s.name)).map(render)}</div>
      {(groups ?? []).map(([heading, names]) => (
        <fieldset key={heading}>
          <legend>{heading}</legend>
          <div class="fields">{specs.filter((s) => names.includes(s.name)).map(render)}</div>
        </fieldset>
      ))}
      {formError && (
        <div class="form-error" role="alert" tabIndex={-1}>
          {formError.message}
          {formError.status ? <span class="muted"> ({formError.status})</span> : null}
        </div>
      )}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Saving…" : submitLabel}
        </button>
        {onCancel && (
          <button type="button" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}

function cssId(s: string): string {
  return typeof CSS !== "undefined" && CSS.escape ? CSS.escape(s) : s.replace(/[^A-Za-z0-9_-]/g, "\\$&");
}

export { ApiError };
