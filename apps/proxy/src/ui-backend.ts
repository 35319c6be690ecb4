/**
 * The admin UI's database side ({@link UiBackend}) on the management API: who the signed-in key is, and the limits
 * and budgets of a key or team built exactly as the request path builds them (`buildIdentity`).
 * Access (the management API's): proxy admins and read-only admins see every key and team; other callers their own
 * keys, the keys of teams they administer, and the teams they belong to (a team's key sees its team).
 */
import type { IncomingMessage } from "node:http";
import { type LiteLLMBudgetContext, litellmBudgets } from "@tollgate/budgets";
import { type Descriptor, type ScopeLimits, scopes } from "@tollgate/core";
import { ProxyHttpError } from "./errors.js";
import { buildIdentity, type Caller, teamBudgetFields } from "./management/identity.js";
import type { Management } from "./management/index.js";
import { hashSecret } from "./management/secrets.js";
import type { LimitSubject, UiBackend, WhoAmI } from "./ui-routes.js";

function seesAll(c: Caller): boolean {
  return c.role === "proxy_admin" || c.role === "proxy_admin_viewer";
}

function limitsOf(
  rpm: number | null | undefined,
  tpm: number | null | undefined,
  parallel: number | null | undefined,
  windowMs: number,
): ScopeLimits | undefined {
  if (rpm == null && tpm == null && parallel == null) return undefined;
  const l: ScopeLimits = { windowMs };
  if (rpm != null) l.requests = rpm;
  if (tpm != null) l.tokens = tpm;
  if (parallel != null) l.maxParallel = parallel;
  return l;
}

/** Model names of a `{model: …}` map (per-model limits and budgets). */
function modelsOf(...maps: unknown[]): string[] {
  const out = new Set<string>();
  for (const m of maps) if (typeof m === "object" && m !== null) for (const k of Object.keys(m)) out.add(k);
  return [...out];
}

function forbidden(message: string): ProxyHttpError {
  return new ProxyHttpError(403, message, "auth_error");
}

/** Wraps the management API's errors (they carry LiteLLM's status, type and message) as the proxy's. */
async function authenticate(m: Management, req: IncomingMessage): Promise<Caller> {
  try {
    return (await m.auth.authenticate(req.headers)).caller;
  } catch (err) {
    const e = err as { status?: number; type?: string; message?: string; param?: string | null };
    if (typeof e.status === "number") {
      throw new ProxyHttpError(e.status, e.message ?? "Authentication Error", e.type ?? "auth_error", e.param ?? null);
    }
    throw err;
  }
}

export function managementUiBackend(m: Management): UiBackend {
  const settings = m.auth.settings;
  const windowMs = settings.windowMs ?? 60_000;

  const teamIdsOf = async (c: Caller, adminOnly = false): Promise<Set<string>> =>
    new Set(
      c.user_id === null
        ? []
        : (await m.repo.membershipsOfUser(c.user_id))
            .filter((t) => !adminOnly || t.role === "admin")
            .map((t) => t.team_id),
    );

  return {
    async whoami(req): Promise<WhoAmI> {
      const c = await authenticate(m, req);
      const memberships = c.user_id === null || c.kind === "master" ? [] : await m.repo.membershipsOfUser(c.user_id);
      const teams = await m.repo.getTeams(memberships.map((t) => t.team_id));
      const alias = new Map(teams.map((t) => [t.team_id, t.team_alias]));
      return {
        role: c.role,
        user_id: c.user_id,
        team_id: c.team_id,
        key_alias: c.key?.key_alias ?? null,
        key_name: c.key?.key_name ?? null,
        teams: memberships.map((t) => ({ team_id: t.team_id, team_alias: alias.get(t.team_id) ?? null, role: t.role })),
      };
    },

    async keyLimits(req, key): Promise<LimitSubject> {
      const c = await authenticate(m, req);
      const token = key.startsWith("sk-") ? hashSecret(key) : key;
      if (!/^[0-9a-f]{64}$/.test(token)) {
        throw new ProxyHttpError(400, "key must be a key (sk-...) or its sha256 hash", "invalid_request_error", "key");
      }
      const b = await m.cache.loadKey(token);
      if (b === null) throw new ProxyHttpError(404, "Key not found", "not_found_error", "key");
      const k = b.key;
      if (!seesAll(c) && c.token !== token && !(c.user_id !== null && k.user_id === c.user_id)) {
        if (k.team_id === null || !(await teamIdsOf(c, true)).has(k.team_id)) {
          throw forbidden("You can only see the limits of your own keys and of the keys of teams you administer");
        }
      }
      const base = buildIdentity(c, b, null, undefined, settings);
      const descriptors: LimitSubject["descriptors"] = base.descriptors.map((descriptor) => ({ descriptor }));
      const seen = new Set(base.descriptors.map((d) => `${d.scope}\u0000${d.value}`));
      const models = modelsOf(
        k.metadata.model_rpm_limit,
        k.metadata.model_tpm_limit,
        k.model_max_budget,
        b.keyBudget?.model_max_budget,
        b.team?.metadata.model_rpm_limit,
        b.team?.metadata.model_tpm_limit,
      );
      for (const model of models) {
        for (const d of buildIdentity(c, b, null, model, settings).descriptors) {
          const id = `${d.scope}\u0000${d.value}`;
          if (seen.has(id)) continue;
          seen.add(id);
          descriptors.push({ descriptor: d, model });
        }
      }
      return { kind: "key", id: token, label: k.key_alias ?? k.key_name, descriptors, budgets: base.budgets };
    },

    async teamLimits(req, teamId): Promise<LimitSubject> {
      const c = await authenticate(m, req);
      const t = await m.repo.getTeam(teamId);
      if (t === undefined)
        throw new ProxyHttpError(404, `Team not found: team_id=${teamId}`, "not_found_error", "team_id");
      if (!seesAll(c) && c.team_id !== t.team_id && !(await teamIdsOf(c)).has(t.team_id)) {
        throw forbidden("You can only see the limits of teams you belong to");
      }
      const descriptors: { descriptor: Descriptor; model?: string }[] = [];
      const own = limitsOf(t.rpm_limit, t.tpm_limit, t.max_parallel_requests, windowMs);
      if (own) descriptors.push({ descriptor: scopes.team(t.team_id, own) });
      for (const model of modelsOf(t.metadata.model_rpm_limit, t.metadata.model_tpm_limit)) {
        const rpm = (t.metadata.model_rpm_limit as Record<string, number> | undefined)?.[model];
        const tpm = (t.metadata.model_tpm_limit as Record<string, number> | undefined)?.[model];
        const l = limitsOf(rpm, tpm, undefined, windowMs);
        if (l) descriptors.push({ descriptor: scopes.modelPerTeam(t.team_id, model, l), model });
      }
      const ctx: LiteLLMBudgetContext = { team: teamBudgetFields(t) };
      return { kind: "team", id: t.team_id, label: t.team_alias, descriptors, budgets: litellmBudgets(ctx) };
    },
  };
}
