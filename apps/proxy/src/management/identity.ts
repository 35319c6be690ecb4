import { type BudgetSpec, type LiteLLMBudgetContext, type LiteLLMModelBudget, litellmBudgets } from "@tollgate/budgets";
import { type Descriptor, type ScopeLimits, scopes } from "@tollgate/core";
import type { Budget, EndUser, Key, ModelBudgetEntry, Organization, Team, TeamMember, User } from "../db/repository.js";
import { ApiError, unauthorized } from "./errors.js";

/** The roles of LiteLLM's users. */
export const ROLES = ["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"] as const;
export type Role = (typeof ROLES)[number];

/** Who calls: the master key, or a virtual key acting with its user's role. */
export interface Caller {
  /** `anonymous`: no key on a proxy without a master key (LLM routes only; the management API refuses it). */
  kind: "master" | "key" | "anonymous";
  role: Role;
  /** The user the caller acts as: `default_user_id` for the master key (LiteLLM's proxy admin name), else the key's user. */
  user_id: string | null;
  /** The key's hash (null for the master key). */
  token: string | null;
  /** The key's stable id (null for the master key). */
  key_id: string | null;
  /** The key's team. */
  team_id: string | null;
  key: Key | null;
}

/** LiteLLM's name of the proxy admin acting through the master key. */
export const PROXY_ADMIN_USER = "default_user_id";

/** The caller of an open proxy (no master key) that sent no key: least privilege. */
export const ANONYMOUS_CALLER: Caller = Object.freeze({
  kind: "anonymous",
  role: "internal_user_viewer",
  user_id: null,
  token: null,
  key_id: null,
  team_id: null,
  key: null,
}) as Caller;

export const MASTER_CALLER: Caller = Object.freeze({
  kind: "master",
  role: "proxy_admin",
  user_id: PROXY_ADMIN_USER,
  token: null,
  key_id: null,
  team_id: null,
  key: null,
}) as Caller;

/** Everything the database knows about one virtual key's request (rows as cached). */
export interface KeyBundle {
  key: Key;
  /** The key's linked budget row (`budget_id`). */
  keyBudget: Budget | null;
  user: User | null;
  /** The key's team row; null when the key has no team or names a team that does not exist. */
  team: Team | null;
  /** The key user's membership in the key's team. */
  member: TeamMember | null;
  /** The member's own budget row (`max_budget_in_team`, member limits), else the team's default member budget. */
  memberBudget: Budget | null;
  organization: Organization | null;
  organizationBudget: Budget | null;
}

/** The end user (customer) of one request and their budget row. */
export interface EndUserBundle {
  id: string;
  /** The row, or null for an end user the database has not seen yet. */
  row: EndUser | null;
  budget: Budget | null;
}

/** Proxy-wide settings the identity depends on (`litellm_settings` and the model list). */
export interface IdentitySettings {
  /** `litellm_settings.max_end_user_budget`: budget of end users without their own. */
  maxEndUserBudget?: number | string | null;
  /** `litellm_settings.max_internal_user_budget` (+ `internal_user_budget_duration`): default for `internal_user`s. */
  maxInternalUserBudget?: number | string | null;
  internalUserBudgetDuration?: string | null;
  /** Model access groups: group name → model names (`model_info.access_groups` of the model list). */
  accessGroups?: ReadonlyMap<string, readonly string[]>;
  /** Rate-limit window. @default 60000 */
  windowMs?: number;
}

/** Who a request's spend is billed to (the spend-log row's columns). */
export interface Attribution {
  api_key: string;
  key_id: string | null;
  key_alias: string | null;
  user_id: string | null;
  team_id: string | null;
  organization_id: string | null;
  end_user: string | null;
}

/**
 * A key's identity for the request path, built once per key state and reused by every request (the proxy's
 * `Identity` plug-point shape, plus the management caller and the spend attribution).
 */
export interface KeyIdentity {
  role: Role | "anonymous";
  keyHash?: string;
  keyAlias?: string;
  userId?: string;
  teamId?: string;
  orgId?: string;
  /** Rate-limit descriptors of the key, its user, team, team member and organization. */
  limits: readonly Descriptor[];
  /** Per-model descriptors (`model_per_key`, `model_per_team`, `model_per_organization`) of one public model. */
  modelLimits: (model: string) => readonly Descriptor[];
  /** Budgets of the key, user (keys without a team), team, team member, organization and their per-model entries. */
  budgets: readonly BudgetSpec[];
  /** Allowed public model names / access groups; null = every model. */
  models: readonly string[] | null;
  /** Copied into spend records: `tollgate_key_id` (the key's stable id). */
  metadata?: Record<string, unknown>;
  caller: Caller;
  attribution: Omit<Attribution, "end_user">;
}

/** An end user's limits and budgets (own budget row, else `max_end_user_budget`). */
export interface EndUserPolicy {
  limits: readonly Descriptor[];
  budgets: readonly BudgetSpec[];
}

/** What one request admits with: the caller, the rate-limit descriptors and the budgets, and who to bill. */
export interface RequestIdentity {
  caller: Caller;
  /** Rate-limit descriptors (key, user, team, team member, end user, organization, per-model). */
  descriptors: Descriptor[];
  /** Budgets (key, user, team, team member, end user, organization, per-model); the proxy adds the global one. */
  budgets: BudgetSpec[];
  attribution: Attribution;
  /** True: `budgets` already holds the end user's budget (own or the `max_end_user_budget` default). */
  coversEndUser: boolean;
}

/** Whether a model list allows `model`: empty = everything; entries are model names, access groups or `*`. */
export function modelAllowed(
  list: readonly string[],
  model: string,
  groups: ReadonlyMap<string, readonly string[]> | undefined,
  teamModels?: readonly string[],
): boolean {
  if (list.length === 0) return true;
  for (const entry of list) {
    if (entry === model || entry === "*" || entry === "all-proxy-models") return true;
    if (groups?.get(entry)?.includes(model)) return true;
    if (entry === "all-team-models" && (teamModels === undefined || modelAllowed(teamModels, model, groups)))
      return true;
    // `openai/*`-style wildcards.
    if (entry.endsWith("/*") && model.startsWith(entry.slice(0, -1))) return true;
  }
  return false;
}

function limits(
  rpm: number | null | undefined,
  tpm: number | null | undefined,
  parallel: number | null | undefined,
  windowMs: number,
): ScopeLimits | undefined {
  if ((rpm ?? null) === null && (tpm ?? null) === null && (parallel ?? null) === null) return undefined;
  const l: ScopeLimits = { windowMs };
  if (rpm !== null && rpm !== undefined) l.requests = rpm;
  if (tpm !== null && tpm !== undefined) l.tokens = tpm;
  if (parallel !== null && parallel !== undefined) l.maxParallel = parallel;
  return l;
}

function num(map: unknown, model: string): number | undefined {
  if (typeof map !== "object" || map === null) return undefined;
  const v = (map as Record<string, unknown>)[model];
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

function modelBudgets(
  m: Record<string, ModelBudgetEntry> | null | undefined,
): Record<string, LiteLLMModelBudget> | undefined {
  if (m === null || m === undefined) return undefined;
  return m as Record<string, LiteLLMModelBudget>;
}

const ANCHOR = (v: number | null) => (v === null ? {} : { started_at: v });

type Fields<K extends keyof LiteLLMBudgetContext> = NonNullable<LiteLLMBudgetContext[K]>;

/** A key's budget fields: its own, else those of its linked budget row. */
export function keyBudgetFields(key: Key, kb: Budget | null): Fields<"key"> {
  return {
    token: key.key_id,
    key_alias: key.key_alias,
    max_budget: key.max_budget ?? kb?.max_budget ?? null,
    soft_budget: key.soft_budget ?? kb?.soft_budget ?? null,
    budget_duration: key.budget_duration ?? kb?.budget_duration ?? null,
    model_max_budget:
      Object.keys(key.model_max_budget).length > 0
        ? modelBudgets(key.model_max_budget)
        : modelBudgets(kb?.model_max_budget),
    ...ANCHOR(key.budget_duration !== null ? key.budget_started_at : (kb?.budget_started_at ?? null)),
  };
}

/** A user's budget fields; `internal_user`s without their own get `max_internal_user_budget`. */
export function userBudgetFields(user: User, settings: IdentitySettings): Fields<"user"> {
  const useDefault =
    user.max_budget === null && user.user_role === "internal_user" && (settings.maxInternalUserBudget ?? null) !== null;
  return {
    user_id: user.user_id,
    max_budget: useDefault ? settings.maxInternalUserBudget : user.max_budget,
    budget_duration: useDefault ? (settings.internalUserBudgetDuration ?? null) : user.budget_duration,
    model_max_budget: modelBudgets(user.model_max_budget),
    ...ANCHOR(useDefault ? null : user.budget_started_at),
  };
}

export function teamBudgetFields(team: Team): Fields<"team"> {
  return {
    team_id: team.team_id,
    max_budget: team.max_budget,
    soft_budget: team.soft_budget,
    budget_duration: team.budget_duration,
    model_max_budget: modelBudgets(team.model_max_budget),
    ...ANCHOR(team.budget_started_at),
  };
}

export function memberBudgetFields(teamId: string, userId: string, mb: Budget): Fields<"team_member"> {
  return {
    user_id: userId,
    team_id: teamId,
    max_budget_in_team: mb.max_budget,
    budget_duration: mb.budget_duration,
    ...(mb.budget_started_at === null ? {} : { started_at: mb.budget_started_at }),
  };
}

export function organizationBudgetFields(org: Organization, ob: Budget): Fields<"organization"> {
  return {
    organization_id: org.organization_id,
    max_budget: ob.max_budget,
    soft_budget: ob.soft_budget,
    budget_duration: ob.budget_duration,
    ...ANCHOR(ob.budget_started_at),
  };
}

/** An end user's budget fields: their budget row, else `max_end_user_budget`. */
export function endUserBudgetFields(id: string, eb: Budget | null, settings: IdentitySettings): Fields<"end_user"> {
  return {
    end_user_id: id,
    max_budget: eb?.max_budget ?? settings.maxEndUserBudget ?? null,
    soft_budget: eb?.soft_budget ?? null,
    budget_duration: eb === null ? null : eb.budget_duration,
    model_max_budget: modelBudgets(eb?.model_max_budget),
    ...ANCHOR(eb?.budget_started_at ?? null),
  };
}

/**
 * Checks a key's request (blocked key, expiry, blocked team, model access) and throws LiteLLM's error when it may
 * not proceed. `model` undefined skips the model check (routes without a model).
 */
export function checkKeyRequest(
  b: KeyBundle,
  model: string | undefined,
  now: number,
  settings: IdentitySettings,
): void {
  const { key, team, user } = b;
  if (key.blocked) {
    throw unauthorized("Key is blocked. Update via `/key/unblock` if you're an admin.");
  }
  if (key.expires !== null && key.expires <= now) {
    throw new ApiError(
      400,
      "expired_key",
      `Authentication Error - Expired Key. Key Expiry time ${new Date(key.expires).toISOString()} and current time ${new Date(now).toISOString()}`,
      "None",
    );
  }
  if (team?.blocked) {
    throw unauthorized(`Team=${team.team_id} is blocked. Update via \`/team/unblock\` if your admin.`);
  }
  if (model === undefined) return;
  const groups = settings.accessGroups;
  if (!modelAllowed(key.models, model, groups, team?.models)) {
    throw new ApiError(
      403,
      "key_model_access_denied",
      `key not allowed to access model. This key can only access models=${JSON.stringify(key.models)}. Tried to access ${model}`,
      "model",
    );
  }
  if (team !== null && !modelAllowed(team.models, model, groups)) {
    throw new ApiError(
      403,
      "team_model_access_denied",
      `Team not allowed to access model. Team=${team.team_id}, Model=${model}. Allowed team models = ${JSON.stringify(team.models)}`,
      "model",
    );
  }
  // A personal key (no team) is also bound by its user's model list.
  if (key.team_id === null && user !== null && !modelAllowed(user.models, model, groups)) {
    throw new ApiError(
      403,
      "key_model_access_denied",
      `User not allowed to access model. User=${user.user_id}, Model=${model}. Allowed user models = ${JSON.stringify(user.models)}`,
      "model",
    );
  }
}

const NO_DESCRIPTORS: readonly Descriptor[] = Object.freeze([]);

/** Expands access groups and `all-team-models`; null = unrestricted. */
function expandModels(
  list: readonly string[],
  groups: ReadonlyMap<string, readonly string[]> | undefined,
  teamModels: readonly string[] | null,
): Set<string> | null {
  if (list.length === 0) return null;
  const out = new Set<string>();
  for (const entry of list) {
    if (entry === "*" || entry === "all-proxy-models") return null;
    if (entry === "all-team-models") {
      if (teamModels === null) return null;
      for (const m of teamModels) out.add(m);
      continue;
    }
    out.add(entry);
    for (const m of groups?.get(entry) ?? []) out.add(m);
  }
  return out;
}

/**
 * The models a key may call: its own list, within its team's list (and, for a key without a team, its user's),
 * access groups expanded; null when none of them restricts.
 */
export function effectiveModels(b: KeyBundle, settings: IdentitySettings): string[] | null {
  const groups = settings.accessGroups;
  const team = b.team === null ? null : expandModels(b.team.models, groups, null);
  const lists: Array<Set<string> | null> = [expandModels(b.key.models, groups, team === null ? null : [...team])];
  if (b.team !== null) lists.push(team);
  else if (b.user !== null) lists.push(expandModels(b.user.models, groups, null));
  let out: string[] | null = null;
  for (const l of lists) {
    if (l === null) continue;
    const allowed: Set<string> = l;
    out = out === null ? [...allowed] : out.filter((m: string) => allowed.has(m));
  }
  return out;
}

/**
 * Builds a key's identity: limits and budgets with LiteLLM's precedence (pure, deterministic):
 * - limits: the key's own `rpm_limit`/`tpm_limit`/`max_parallel_requests` (else its linked budget's), its user's,
 *   its team's, the team member's (own budget row, else the team's default member budget), the organization's
 *   budget row; per model: the key's `metadata.model_rpm_limit/model_tpm_limit` (else its `model_max_budget`
 *   entry's `rpm_limit`/`tpm_limit`), the team's and the organization's metadata maps;
 * - budgets (via `litellmBudgets`): key (own fields, else its linked budget), user only for keys without a team
 *   (`max_internal_user_budget` for `internal_user`s without their own), team, team member (`max_budget_in_team`),
 *   organization (when `max_budget > 0`), and every `model_max_budget` entry.
 * `b` null: the master key (no limits or budgets of its own).
 */
export function buildKeyIdentity(caller: Caller, b: KeyBundle | null, settings: IdentitySettings): KeyIdentity {
  if (b === null) {
    return {
      role: caller.kind === "anonymous" ? "anonymous" : caller.role,
      userId: caller.user_id ?? undefined,
      limits: NO_DESCRIPTORS,
      modelLimits: () => NO_DESCRIPTORS,
      budgets: [],
      models: null,
      caller,
      attribution: {
        api_key: "",
        key_id: null,
        key_alias: null,
        user_id: caller.user_id,
        team_id: null,
        organization_id: null,
      },
    };
  }
  const windowMs = settings.windowMs ?? 60_000;
  const limitsOut: Descriptor[] = [];
  const ctx: LiteLLMBudgetContext = {};
  const { key, keyBudget: kb, user, team, memberBudget: mb, organization: org, organizationBudget: ob } = b;
  const kid = key.key_id;
  const keyLimits = limits(
    key.rpm_limit ?? kb?.rpm_limit,
    key.tpm_limit ?? kb?.tpm_limit,
    key.max_parallel_requests ?? kb?.max_parallel_requests,
    windowMs,
  );
  if (keyLimits) limitsOut.push(scopes.apiKey(kid, keyLimits));
  if (user !== null) {
    const l = limits(user.rpm_limit, user.tpm_limit, user.max_parallel_requests, windowMs);
    if (l) limitsOut.push(scopes.user(user.user_id, l));
  }
  if (team !== null) {
    const l = limits(team.rpm_limit, team.tpm_limit, team.max_parallel_requests, windowMs);
    if (l) limitsOut.push(scopes.team(team.team_id, l));
  }
  if (key.team_id !== null && key.user_id !== null && mb !== null) {
    const l = limits(mb.rpm_limit, mb.tpm_limit, mb.max_parallel_requests, windowMs);
    if (l) limitsOut.push(scopes.teamMember(key.team_id, key.user_id, l));
  }
  if (org !== null && ob !== null) {
    const l = limits(ob.rpm_limit, ob.tpm_limit, ob.max_parallel_requests, windowMs);
    if (l) limitsOut.push(scopes.organization(org.organization_id, l));
  }
  const perModel = new Map<string, readonly Descriptor[]>();
  const modelLimits = (model: string): readonly Descriptor[] => {
    const cached = perModel.get(model);
    if (cached !== undefined) return cached;
    const out: Descriptor[] = [];
    const mmb = key.model_max_budget[model] ?? kb?.model_max_budget?.[model];
    const l = limits(
      num(key.metadata.model_rpm_limit, model) ?? mmb?.rpm_limit ?? undefined,
      num(key.metadata.model_tpm_limit, model) ?? mmb?.tpm_limit ?? undefined,
      undefined,
      windowMs,
    );
    if (l) out.push(scopes.modelPerKey(kid, model, l));
    if (team !== null) {
      const tl = limits(
        num(team.metadata.model_rpm_limit, model),
        num(team.metadata.model_tpm_limit, model),
        undefined,
        windowMs,
      );
      if (tl) out.push(scopes.modelPerTeam(team.team_id, model, tl));
    }
    if (org !== null) {
      const ol = limits(
        num(org.metadata.model_rpm_limit, model),
        num(org.metadata.model_tpm_limit, model),
        undefined,
        windowMs,
      );
      if (ol) out.push(scopes.modelPerOrganization(org.organization_id, model, ol));
    }
    const frozen = out.length === 0 ? NO_DESCRIPTORS : out;
    if (perModel.size < 1_000) perModel.set(model, frozen);
    return frozen;
  };

  ctx.key = keyBudgetFields(key, kb);
  if (user !== null) ctx.user = userBudgetFields(user, settings);
  if (key.team_id !== null) {
    // A key of a team is billed to the team even when the team row does not exist (LiteLLM lets keys name any
    // team_id): the team slot is filled so the owner's personal budget does not apply.
    ctx.team = team === null ? { team_id: key.team_id } : teamBudgetFields(team);
    if (key.user_id !== null && mb !== null) ctx.team_member = memberBudgetFields(key.team_id, key.user_id, mb);
  }
  if (org !== null && ob !== null) ctx.organization = organizationBudgetFields(org, ob);
  const orgId = org?.organization_id ?? key.organization_id ?? null;
  return {
    role: caller.role,
    keyHash: key.token,
    ...(key.key_alias === null ? {} : { keyAlias: key.key_alias }),
    ...(key.user_id === null ? {} : { userId: key.user_id }),
    ...(key.team_id === null ? {} : { teamId: key.team_id }),
    ...(orgId === null ? {} : { orgId }),
    limits: limitsOut,
    modelLimits,
    budgets: litellmBudgets(ctx),
    models: effectiveModels(b, settings),
    metadata: { tollgate_key_id: kid },
    caller,
    attribution: {
      api_key: key.token,
      key_id: kid,
      key_alias: key.key_alias,
      user_id: key.user_id,
      team_id: key.team_id,
      organization_id: orgId,
    },
  };
}

/** An end user's limits and budgets: their budget row's, else the `max_end_user_budget` default. */
export function buildEndUserPolicy(eu: EndUserBundle, settings: IdentitySettings): EndUserPolicy {
  const eb = eu.budget;
  const windowMs = settings.windowMs ?? 60_000;
  const l = eb === null ? undefined : limits(eb.rpm_limit, eb.tpm_limit, eb.max_parallel_requests, windowMs);
  return {
    limits: l ? [scopes.endUser(eu.id, l)] : NO_DESCRIPTORS,
    budgets: litellmBudgets({ end_user: endUserBudgetFields(eu.id, eb, settings) }),
  };
}

/** One request's admission from a key identity, its model and its end user (what the proxy composes). */
export function composeRequest(
  id: KeyIdentity,
  model: string | undefined,
  endUserId: string | null,
  eu: EndUserPolicy | null,
): RequestIdentity {
  const descriptors = [...id.limits, ...(model === undefined ? [] : id.modelLimits(model)), ...(eu?.limits ?? [])];
  return {
    caller: id.caller,
    descriptors,
    budgets: [...id.budgets, ...(eu?.budgets ?? [])],
    attribution: { ...id.attribution, end_user: endUserId },
    coversEndUser: eu !== null,
  };
}

/** Builds one request's admission in one step (tests and callers without the proxy's plug points). */
export function buildIdentity(
  caller: Caller,
  b: KeyBundle | null,
  endUser: EndUserBundle | null,
  model: string | undefined,
  settings: IdentitySettings,
): RequestIdentity {
  return composeRequest(
    buildKeyIdentity(caller, b, settings),
    model,
    endUser?.id ?? null,
    endUser === null ? null : buildEndUserPolicy(endUser, settings),
  );
}
