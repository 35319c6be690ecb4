import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Api, type ApiError } from "./api";
import { SessionContext } from "./context";
import { asApiError } from "./hooks";
import { BudgetsPage } from "./pages/budgets";
import { CustomersPage } from "./pages/customers";
import { KeysPage } from "./pages/keys";
import { LimitsPage } from "./pages/limits";
import { LogsPage } from "./pages/logs";
import { ModelsPage } from "./pages/models";
import { OrgsPage } from "./pages/orgs";
import { SpendPage } from "./pages/spend";
import { TeamsPage } from "./pages/teams";
import { UsersPage } from "./pages/users";
import { type Me, meOf, PAGES, type Page, ROLE_LABELS, visiblePages } from "./permissions";
import { parseHash } from "./route";

const STORAGE = "tollgate.key";

function readStoredKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE);
  } catch {
    return null;
  }
}

export function App() {
  const [auth, setAuth] = useState<{ api: Api; me: Me } | null>(null);
  const [restoring, setRestoring] = useState(() => readStoredKey() !== null);
  const [signInError, setSignInError] = useState<ApiError | null>(null);

  const signIn = useCallback(async (key: string) => {
    const api = new Api(key);
    const w = await api.whoami();
    try {
      sessionStorage.setItem(STORAGE, key);
    } catch {
      // private mode: the session lasts until the tab reloads
    }
    setAuth({ api, me: meOf(w) });
  }, []);

  useEffect(() => {
    const key = readStoredKey();
    if (key === null) return;
    signIn(key)
      .catch((err: unknown) => {
        sessionStorage.removeItem(STORAGE);
        setSignInError(asApiError(err));
      })
      .finally(() => setRestoring(false));
  }, [signIn]);

  const signOut = useCallback(() => {
    sessionStorage.removeItem(STORAGE);
    setAuth(null);
    setSignInError(null);
  }, []);

  if (restoring) return <p class="loading">Signing in…</p>;
  if (!auth) return <SignIn onSignIn={signIn} initialError={signInError} />;
  return <Shell api={auth.api} me={auth.me} onSignOut={signOut} />;
}

function SignIn({
  onSignIn,
  initialError,
}: {
  onSignIn: (key: string) => Promise<void>;
  initialError: ApiError | null;
}) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(initialError?.message ?? null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    document.title = "Sign in · Tollgate";
    input.current?.focus();
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (k === "") {
      setError("Enter the master key or your API key.");
      input.current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSignIn(k);
    } catch (err) {
      const apiErr = asApiError(err);
      setError(apiErr.status === 401 ? `This key was refused: ${apiErr.message}` : apiErr.message);
      input.current?.focus();
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} noValidate aria-busy={busy}>
        <h1>Tollgate</h1>
        <p class="muted">Sign in to manage keys, teams, budgets and limits.</p>
        <div class="field">
          <label for="signin-key">Master key or API key</label>
          <input
            id="signin-key"
            ref={input}
            type="password"
            autoComplete="current-password"
            placeholder="sk-…"
            value={key}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? "signin-error" : "signin-help"}
            onInput={(e) => setKey(e.currentTarget.value)}
          />
          {error ? (
            <p class="field-error" id="signin-error" role="alert">
              {error}
            </p>
          ) : (
            <p class="field-help" id="signin-help">
              The master key is printed where the proxy started (general_settings.master_key or LITELLM_MASTER_KEY). The
              key stays in this tab only.
            </p>
          )}
        </div>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

function Shell({ api, me, onSignOut }: { api: Api; me: Me; onSignOut: () => void }) {
  const pages = useMemo(() => visiblePages(me), [me]);
  const [route, setRoute] = useState(() => parseHash(location.hash, pages[0]!));
  const [status, setStatus] = useState("");
  const first = useRef(true);

  useEffect(() => {
    const onHash = () => setRoute(parseHash(location.hash, pages[0]!));
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, [pages]);

  const page: Page = pages.includes(route.page) ? route.page : pages[0]!;
  const label = PAGES.find((p) => p.page === page)!.label;

  useEffect(() => {
    document.title = `${label} · Tollgate`;
    if (first.current) {
      first.current = false;
      return;
    }
    document.getElementById("page-title")?.focus();
  }, [label]);

  useEffect(() => {
    if (!status) return;
    const t = setTimeout(() => setStatus(""), 4000);
    return () => clearTimeout(t);
  }, [status]);

  const session = useMemo(
    () => ({
      api,
      me,
      params: route.params,
      navigate: (hash: string) => {
        location.hash = hash;
      },
      notify: setStatus,
    }),
    [api, me, route.params],
  );

  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <span class="brand">Tollgate</span>
        <nav aria-label="Sections">
          <ul>
            {PAGES.filter((p) => pages.includes(p.page)).map((p) => (
              <li key={p.page}>
                <a href={`#/${p.page}`} aria-current={p.page === page ? "page" : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="whoami">
          <span class="role" data-testid="role">
            {ROLE_LABELS[me.role]}
          </span>
          {me.userId && me.userId !== "default_user_id" && <span class="muted"> · {me.userId}</span>}
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <PageView page={page} />
      </main>
      <div class="toast" role="status" aria-live="polite">
        {status}
      </div>
    </SessionContext.Provider>
  );
}

function PageView({ page }: { page: Page }) {
  switch (page) {
    case "keys":
      return <KeysPage />;
    case "teams":
      return <TeamsPage />;
    case "users":
      return <UsersPage />;
    case "orgs":
      return <OrgsPage />;
    case "customers":
      return <CustomersPage />;
    case "budgets":
      return <BudgetsPage />;
    case "spend":
      return <SpendPage />;
    case "logs":
      return <LogsPage />;
    case "limits":
      return <LimitsPage />;
    case "models":
      return <ModelsPage />;
  }
}

export { asApiError };
