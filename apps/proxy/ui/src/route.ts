import type { Page } from "./permissions";

const PAGES = new Set<Page>([
  "keys",
  "teams",
  "users",
  "orgs",
  "customers",
  "budgets",
  "spend",
  "logs",
  "limits",
  "models",
]);

/** `#/keys?team_id=x` → page and parameters; unknown pages fall back to `fallback`. */
export function parseHash(hash: string, fallback: Page): { page: Page; params: URLSearchParams } {
  const h = hash.replace(/^#\/?/, "");
  const q = h.indexOf("?");
  const name = (q === -1 ? h : h.slice(0, q)) as Page;
  const params = new URLSearchParams(q === -1 ? "" : h.slice(q + 1));
  return { page: PAGES.has(name) ? name : fallback, params };
}

export function hashOf(page: Page, params?: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v) q.set(k, v);
  const s = q.toString();
  return `#/${page}${s ? `?${s}` : ""}`;
}
