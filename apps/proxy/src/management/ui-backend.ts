/** The admin UI's database side (`/tollgate/whoami`, `/tollgate/limits`), on the management API's data. */
import type { IncomingMessage } from "node:http";
import { litellmBudgets } from "@tollgate/budgets";
import { type Descriptor, scopes } from "@tollgate/core";
import { ProxyHttpError } from "../errors.js";
import { tokenOf } from "../identity.js";
import type { TollgateProxy } from "../server.js";
import type { LimitSubject, UiBackend, WhoAmI } from "../ui-routes.js";
import { ApiError } from "./errors.js";
import { buildKeyIdentity, type Caller, type KeyIdentity, teamBudgetFields } from "./identity.js";
import type { Management } from "./index.js";
import { tokenOf as storedTokenOf } from "./secrets.js";

function toProxyError(err: unknown): unknown {
  return err instanceof ApiError ? new ProxyHttpError(err.status, err.message, err.type, err.param) : err;
}

/** Models named in `{model: limit}` maps of metadata. */
function mapModels(...maps: unknown[]): string[] {
  const out = new Set<string>();
  for (const m of maps) if (typeof m === "object" && m !== null) for (const k of Object.keys(m)) out.add(k);
  return [...out];
}

export function uiBackend(proxy: TollgateProxy, m: Management): UiBackend {
  const callerOf = async (req: IncomingMessage): Promise<Caller> => {
    try {
      const id = (await proxy.authenticator.authenticate(tokenOf(req), req)) as unknown as KeyIdentity;
      if (id.caller.kind === "anonymous") {
        throw new ProxyHttpError(401, "Authentication Error, No api key passed in.", "auth_error", "None");
      }
      return id.caller;
    } catch (err) {
      throw toProxyError(err);
    }
  };
  const readAll = (c: Caller) => c.role === "proxy_admin" || c.role === "proxy_admin_viewer";
  const forbidden = (what: string) =>
    new ProxyHttpError(403, `You are not allowed to view ${what}`, "auth_error", "None");

  return {
    async whoami(req): Promise<WhoAmI> {
      const caller = await callerOf(req);
      const memberships = caller.user_id === null ? [] : await m.repo.membershipsOfUser(caller.user_id);
      const teams = await m.repo.getTeams(memberships.map((x) => x.team_id));
      const alias = new Map(teams.map((t) => [t.team_id, t.team_alias]));
      return {
        role: caller.role,
        user_id: caller.user_id,
        team_id: caller.team_id,
        key_alias: caller.key?.key_alias ?? null,
        key_name: caller.key?.key_name ?? null,
        teams: memberships.map((x) => ({ team_id: x.team_id, team_alias: alias.get(x.team_id) ?? null, role: x.role })),
      };
    },

    async keyLimits(req, key): Promise<LimitSubject> {
      const caller = await callerOf(req);
      const token = storedTokenOf(key);
      if (token === undefined) throw new ProxyHttpError(400, "Invalid key format.", "invalid_request_error", "key");
      const bundle = await m.cache.loadKey(token).catch((e) => Promise.reject(toProxyError(e)));
      if (bundle === null) throw new ProxyHttpError(404, "Key not found in database.", "not_found_error", "key");
      const k = bundle.key;
      let allowed =
        readAll(caller) || caller.token === k.token || (caller.user_id !== null && caller.user_id === k.user_id);
      if (!allowed && k.team_id !== null && caller.user_id !== null) {
        allowed = (await m.repo.getTeamMember(k.team_id, caller.user_id))?.role === "admin";
      }
      if (!allowed) throw forbidden(`this key's limits (${k.key_name})`);
      const id = buildKeyIdentity(caller, bundle, m.auth.settings);
      const descriptors: LimitSubject["descriptors"] = id.limits.map((d) => ({ descriptor: d }));
      const models = mapModels(
        k.metadata.model_rpm_limit,
        k.metadata.model_tpm_limit,
        bundle.team?.metadata.model_rpm_limit,
        bundle.team?.metadata.model_tpm_limit,
        k.model_max_budget,
      );
      for (const model of models) for (const d of id.modelLimits(model)) descriptors.push({ descriptor: d, model });
      return { kind: "key", id: k.token, label: k.key_alias ?? k.key_name, descriptors, budgets: [...id.budgets] };
    },

    async teamLimits(req, teamId): Promise<LimitSubject> {
      const caller = await callerOf(req);
      const team = await m.repo.getTeam(teamId).catch((e) => Promise.reject(toProxyError(e)));
      if (team === undefined)
        throw new ProxyHttpError(404, `Team not found: team_id=${teamId}`, "not_found_error", "team_id");
      if (!readAll(caller) && caller.team_id !== teamId) {
        const member = caller.user_id === null ? undefined : await m.repo.getTeamMember(teamId, caller.user_id);
        if (member === undefined) throw forbidden(`team ${teamId}`);
      }
      const descriptors: LimitSubject["descriptors"] = [];
      const lim = (rpm: number | null | undefined, tpm: number | null | undefined, par?: number | null) => {
        const l: { requests?: number; tokens?: number; maxParallel?: number; windowMs: number } = { windowMs: 60_000 };
        if (rpm != null) l.requests = rpm;
        if (tpm != null) l.tokens = tpm;
        if (par != null) l.maxParallel = par;
        return Object.keys(l).length > 1 ? l : undefined;
      };
      const tl = lim(team.rpm_limit, team.tpm_limit, team.max_parallel_requests);
      if (tl) descriptors.push({ descriptor: scopes.team(team.team_id, tl) });
      const rpmMap = team.metadata.model_rpm_limit as Record<string, number> | undefined;
      const tpmMap = team.metadata.model_tpm_limit as Record<string, number> | undefined;
      for (const model of mapModels(rpmMap, tpmMap)) {
        const l = lim(rpmMap?.[model], tpmMap?.[model]);
        if (l) descriptors.push({ descriptor: scopes.modelPerTeam(team.team_id, model, l) as Descriptor, model });
      }
      return {
        kind: "team",
        id: team.team_id,
        label: team.team_alias,
        descriptors,
        budgets: litellmBudgets({ team: teamBudgetFields(team) }),
      };
    },
  };
}
