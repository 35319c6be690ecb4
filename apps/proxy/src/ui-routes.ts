/**
 * The admin UI's routes (issue 15), mounted as a {@link ProxyExtension}:
 * - `GET /ui` → the single-page app built into `dist/ui` (Preact + uPlot, no CDN), with a strict CSP;
 * - `GET /tollgate/whoami` → the signed-in caller (role, user, team, team roles) for role-aware views;
 * - `GET /tollgate/limits?key=<sk-… or hash>` | `?team_id=<id>` → live usage against every rate limit and budget of a
 *   key or team, with reset times (read-only: nothing is consumed);
 * - `GET /model/info` (LiteLLM's) → the configured deployments with their limits and prices, without secrets.
 * What depends on the database (keys, teams, roles) comes from a {@link UiBackend}; without one only the master key
 * signs in and live limits answer 404.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BudgetSpec } from "@tollgate/budgets";
import type { Descriptor } from "@tollgate/core";
import { ProxyHttpError } from "./errors.js";
import type { Exchange } from "./exchange.js";
import { tokenOf } from "./identity.js";
import type { ProxyExtension, TollgateProxy } from "./server.js";

/** The answer of `GET /tollgate/whoami`. */
export interface WhoAmI {
  role: string;
  user_id: string | null;
  team_id: string | null;
  key_alias: string | null;
  key_name: string | null;
  /** The user's teams and their role in each (`admin` | `user`). */
  teams: { team_id: string; team_alias: string | null; role: string }[];
}

/** The limits and budgets of one key or team, as the request path builds them. */
export interface LimitSubject {
  kind: "key" | "team";
  id: string;
  label: string | null;
  /** Rate-limit descriptors; `model` for per-model ones. */
  descriptors: { descriptor: Descriptor; model?: string }[];
  budgets: BudgetSpec[];
}

/** What the UI needs from the database. Methods authenticate the request and throw a ProxyHttpError to refuse. */
export interface UiBackend {
  whoami(req: IncomingMessage): Promise<WhoAmI>;
  /** `key`: a secret (`sk-…`) or its sha256 hex. */
  keyLimits(req: IncomingMessage, key: string): Promise<LimitSubject>;
  teamLimits(req: IncomingMessage, teamId: string): Promise<LimitSubject>;
}

export interface UiOptions {
  /** The database side; a function because it exists only once the management extension has started. */
  backend?: () => UiBackend | undefined;
  /** Directory of the built UI. @default `dist/ui` of this package */
  dir?: string;
}

/** The built UI's directory: next to the bundled code (`dist/ui`), or `../dist/ui` when running from `src`. */
export function defaultUiDir(): string {
  for (const rel of ["./ui/", "../dist/ui/"]) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(dir, "index.html"))) return dir;
  }
  return fileURLToPath(new URL("./ui/", import.meta.url));
}

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
};

/** Scripts and styles only from the proxy itself; the UI talks to nothing else. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // uPlot and Preact set element styles at run time
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

function sendRaw(ex: Exchange, status: number, headers: Record<string, string>, body: Buffer | string): void {
  ex.responded = true;
  ex.res.writeHead(status, { "x-content-type-options": "nosniff", ...headers });
  ex.res.end(ex.method === "HEAD" ? undefined : body);
}

/** Registers the static UI: `/ui`, `/ui/`, `/ui/index.html` and every file of `assets/` (read once, at start). */
function mountStatic(proxy: TollgateProxy, dir: string): void {
  const r = proxy.routes;
  const indexFile = join(dir, "index.html");
  if (!existsSync(indexFile)) {
    const missing = (ex: Exchange) =>
      sendRaw(
        ex,
        503,
        { "content-type": "text/plain; charset=utf-8" },
        `The admin UI is not built (${indexFile} is missing): run pnpm build.\n`,
      );
    r.add("GET", "/ui", missing, { auth: "none" });
    r.add("GET", "/ui/", missing, { auth: "none" });
    return;
  }
  const index = readFileSync(indexFile);
  const page = (ex: Exchange) =>
    sendRaw(
      ex,
      200,
      {
        "content-type": TYPES[".html"]!,
        "cache-control": "no-cache",
        "content-security-policy": CSP,
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
      },
      index,
    );
  r.add("GET", "/ui", (ex) => sendRaw(ex, 301, { location: "/ui/" }, ""), { auth: "none" });
  r.add("GET", "/ui/", page, { auth: "none" });
  r.add("GET", "/ui/index.html", page, { auth: "none" });
  const assets = join(dir, "assets");
  if (!existsSync(assets)) return;
  for (const name of readdirSync(assets)) {
    const body = readFileSync(join(assets, name));
    const type = TYPES[extname(name)] ?? "application/octet-stream";
    // file names carry a content hash: cache them for good
    r.add(
      "GET",
      `/ui/assets/${name}`,
      (ex) => sendRaw(ex, 200, { "content-type": type, "cache-control": "public, max-age=31536000, immutable" }, body),
      { auth: "none" },
    );
  }
}

/** Without a database: the master key (or an open proxy) is the only caller. */
function configBackend(proxy: TollgateProxy): UiBackend {
  const noDb = () =>
    new ProxyHttpError(
      404,
      "Keys and teams need a database: set general_settings.database_url (or DATABASE_URL)",
      "not_found_error",
    );
  return {
    async whoami(req) {
      const id = await proxy.authenticator.authenticate(tokenOf(req), req);
      return {
        role: id.role,
        user_id: id.userId ?? null,
        team_id: id.teamId ?? null,
        key_alias: id.keyAlias ?? null,
        key_name: null,
        teams: [],
      };
    },
    async keyLimits(req) {
      await proxy.authenticator.authenticate(tokenOf(req), req);
      throw noDb();
    },
    async teamLimits(req) {
      await proxy.authenticator.authenticate(tokenOf(req), req);
      throw noDb();
    },
  };
}

/** Live usage of a subject: the store's current counters, nothing consumed. */
async function liveLimits(proxy: TollgateProxy, subject: LimitSubject) {
  const reader = proxy.statusReader;
  const models = new Map<string, string>();
  for (const d of subject.descriptors)
    if (d.model !== undefined) models.set(`${d.descriptor.scope}\u0000${d.descriptor.value}`, d.model);
  const statuses =
    subject.descriptors.length === 0 ? [] : await reader.limiter.status(subject.descriptors.map((d) => d.descriptor));
  const budgets = subject.budgets.length === 0 ? [] : await reader.budgets.status(subject.budgets);
  return {
    subject: { kind: subject.kind, id: subject.id, label: subject.label },
    now: proxy.now(),
    limits: statuses.map((s) => ({
      scope: s.scope,
      type: s.type,
      model: models.get(`${s.scope}\u0000${s.value}`) ?? null,
      limit: s.limit,
      used: s.used,
      remaining: s.remaining,
      reset_at: s.resetAt,
      window_ms: s.windowMs ?? null,
      enforced: s.enforced,
    })),
    budgets: budgets.map((b, i) => ({
      scope: b.budget.scope,
      model: b.budget.model ?? null,
      spend: b.spend / 1e9,
      reserved: b.reserved / 1e9,
      max_budget: b.max === null ? null : b.max / 1e9,
      soft_budget: b.softBudget === null ? null : b.softBudget / 1e9,
      budget_duration: subject.budgets[i]?.duration ?? null,
      reset_at: b.resetAt,
    })),
  };
}

/** LiteLLM's `/model/info`: deployments with their limits, prices and access groups; never `api_key`. */
function modelInfo(proxy: TollgateProxy) {
  return {
    data: proxy.config.deployments.map((d) => {
      const params: Record<string, unknown> = { model: d.litellmModel };
      if (d.apiBase) params.api_base = d.apiBase;
      if (d.rpm !== undefined) params.rpm = d.rpm;
      if (d.tpm !== undefined) params.tpm = d.tpm;
      if (d.maxParallel !== undefined) params.max_parallel_requests = d.maxParallel;
      if (d.inputCostPerToken !== undefined) params.input_cost_per_token = Number(d.inputCostPerToken);
      if (d.outputCostPerToken !== undefined) params.output_cost_per_token = Number(d.outputCostPerToken);
      return {
        model_name: d.modelName,
        litellm_params: params,
        model_info: {
          id: d.id,
          mode: d.mode ?? "chat",
          access_groups: d.accessGroups,
          ...(d.maxOutputTokens !== undefined ? { max_output_tokens: d.maxOutputTokens } : {}),
        },
      };
    }),
  };
}

/** The admin UI extension: static app, whoami, live limits and model info. Add it with `proxy.use(...)`. */
export function uiExtension(options: UiOptions = {}): ProxyExtension {
  return {
    name: "ui",
    start(proxy) {
      const fallback = configBackend(proxy);
      const backend = () => options.backend?.() ?? fallback;
      mountStatic(proxy, options.dir ?? defaultUiDir());
      const r = proxy.routes;
      r.add("GET", "/tollgate/whoami", async (ex) => ex.send(200, await backend().whoami(ex.req)), { auth: "none" });
      r.add(
        "GET",
        "/tollgate/limits",
        async (ex) => {
          const key = ex.query.get("key");
          const team = ex.query.get("team_id");
          if ((key ? 1 : 0) + (team ? 1 : 0) !== 1) {
            throw new ProxyHttpError(400, "Give exactly one of key or team_id", "invalid_request_error", "key");
          }
          const b = backend();
          const subject = key ? await b.keyLimits(ex.req, key) : await b.teamLimits(ex.req, team!);
          ex.send(200, await liveLimits(proxy, subject));
        },
        { auth: "none" },
      );
      if (proxy.routes.get("GET", "/model/info") === undefined) {
        r.add("GET", "/model/info", (ex) => ex.send(200, modelInfo(proxy)));
        r.add("GET", "/v1/model/info", (ex) => ex.send(200, modelInfo(proxy)));
      }
    },
  };
}
