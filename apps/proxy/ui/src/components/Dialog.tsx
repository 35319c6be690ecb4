import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { asApiError } from "../hooks";

/** A modal on the native `<dialog>` (focus trapped, Escape closes, focus returns to the opener). */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useRef(`dlg-${Math.random().toString(36).slice(2)}`).current;
  useEffect(() => {
    const d = ref.current!;
    const opener = document.activeElement as HTMLElement | null;
    if (!d.open) d.showModal();
    // showModal focuses the first focusable element (the close button): start in the content instead
    d.querySelector<HTMLElement>(
      ".dialog-body :is(input, select, textarea):not([disabled]), .dialog-body [autofocus]",
    )?.focus();
    return () => {
      if (d.open) d.close();
      opener?.focus?.();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={props.wide ? "wide" : undefined}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <header>
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" class="icon" aria-label="Close" onClick={props.onClose}>
          ×
        </button>
      </header>
      <div class="dialog-body">{props.children}</div>
    </dialog>
  );
}

/** Asks before a destructive action; shows the server's error in place when it fails. */
export function ConfirmDialog(props: {
  title: string;
  message: ComponentChildren;
  confirmLabel: string;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      <p>{props.message}</p>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
      <div class="actions">
        <button
          type="button"
          class="danger"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            setError(null);
            try {
              await props.onConfirm();
              props.onClose();
            } catch (err) {
              setError(asApiError(err).message);
            } finally {
              setBusy(false);
            }
          }}
        >
          {busy ? "Working…" : props.confirmLabel}
        </button>
        <button type="button" onClick={props.onClose} disabled={busy} autofocus>
          Cancel
        </button>
      </div>
    </Dialog>
  );
}

/** Shows a new secret once, with a copy button. */
export function SecretDialog(props: { title: string; secret: string; onClose: () => void }) {
  const [copied, setCopied] = useState<"no" | "yes" | "failed">("no");
  const inputRef = useRef<HTMLInputElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.secret);
      setCopied("yes");
    } catch {
      inputRef.current?.select();
      setCopied(document.execCommand?.("copy") ? "yes" : "failed");
    }
  };
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      <p>
        <strong>Copy this key now.</strong> It is shown only once: the proxy keeps only its hash.
      </p>
      <div class="secret-row">
        <label for="new-secret" class="visually-hidden">
          New key
        </label>
        <input
          id="new-secret"
          ref={inputRef}
          class="mono"
          readOnly
          value={props.secret}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" class="primary" onClick={copy}>
          {copied === "yes" ? "Copied" : "Copy"}
        </button>
      </div>
      <p role="status" class="muted">
        {copied === "yes"
          ? "The key is on the clipboard."
          : copied === "failed"
            ? "Copy failed: select the key and copy it."
            : ""}
      </p>
      <div class="actions">
        <button type="button" onClick={props.onClose}>
          Done
        </button>
      </div>
    </Dialog>
  );
}
