import type { FieldSpec, RawValue } from "../validate";

export interface FieldProps {
  spec: FieldSpec;
  value: RawValue;
  error?: string;
  disabled?: boolean;
  /** Prefix making ids unique when several forms are on a page. */
  idPrefix: string;
  onChange: (name: string, value: RawValue) => void;
}

const MULTILINE = new Set(["json", "model-int-map", "model-budget-map"]);

/** One labelled form control with its help line and its error (tied by aria-describedby). */
export function Field({ spec, value, error, disabled, idPrefix, onChange }: FieldProps) {
  const id = `${idPrefix}-${spec.name}`;
  const helpId = spec.help ? `${id}-help` : undefined;
  const errId = error ? `${id}-error` : undefined;
  const describedBy = [errId, helpId].filter(Boolean).join(" ") || undefined;
  const common = {
    id,
    name: spec.name,
    disabled,
    "aria-invalid": error ? true : undefined,
    "aria-describedby": describedBy,
    "aria-required": spec.required ? true : undefined,
  };
  let control: preact.JSX.Element;
  if (spec.kind === "bool") {
    control = (
      <input
        {...common}
        type="checkbox"
        checked={value === true}
        onChange={(e) => onChange(spec.name, e.currentTarget.checked)}
      />
    );
  } else if (spec.kind === "select") {
    control = (
      <select {...common} value={String(value)} onChange={(e) => onChange(spec.name, e.currentTarget.value)}>
        {!spec.required && <option value="">—</option>}
        {spec.options?.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    );
  } else if (MULTILINE.has(spec.kind)) {
    control = (
      <textarea
        {...common}
        rows={2}
        spellcheck={false}
        placeholder={spec.placeholder}
        value={String(value)}
        onInput={(e) => onChange(spec.name, e.currentTarget.value)}
      />
    );
  } else {
    const numeric = spec.kind === "usd" || spec.kind === "int";
    control = (
      <input
        {...common}
        type="text"
        inputMode={
          spec.kind === "usd"
            ? "decimal"
            : spec.kind === "int"
              ? "numeric"
              : spec.kind === "email"
                ? "email"
                : undefined
        }
        autoComplete="off"
        spellcheck={false}
        placeholder={spec.placeholder ?? (numeric ? "unlimited" : undefined)}
        value={String(value)}
        onInput={(e) => onChange(spec.name, e.currentTarget.value)}
      />
    );
  }
  return (
    <div class={`field${spec.kind === "bool" ? " field-check" : ""}${MULTILINE.has(spec.kind) ? " field-wide" : ""}`}>
      <div class="label-row">
        <label for={id}>{spec.label}</label>
        {spec.required && (
          <span class="required-mark" aria-hidden="true">
            *
          </span>
        )}
      </div>
      {control}
      {error && (
        <p class="field-error" id={errId}>
          {error}
        </p>
      )}
      {spec.help && (
        <p class="field-help" id={helpId}>
          {spec.help}
        </p>
      )}
    </div>
  );
}
