import { TollgateError } from "@tollgate/core";
import type { Usd } from "./money.js";
import type { BudgetScope, BudgetSpec } from "./types.js";

/** One `model_max_budget` entry; LiteLLM accepts both spellings (`GenericBudgetInfo`). */
export interface LiteLLMModelBudget {
  max_budget?: Usd | null;
  budget_duration?: string | null;
  budget_limit?: Usd | null;
  time_period?: string | null;
}

/** Budget fields shared by LiteLLM's keys, users, teams, end users and organizations. */
export interface LiteLLMBudgetFields {
  max_budget?: Usd | null;
  soft_budget?: Usd | null;
  budget_duration?: string | null;
  /** `{ "gpt-4o": { max_budget: 10, budget_duration: "1d" } }` (keys, users, teams, end users). */
  model_max_budget?: Record<string, LiteLLMModelBudget> | null;
  /** When the entity's budget started (ms); anchors `3d`-style durations and rolling resets. */
  started_at?: number;
}

/** The budget-bearing entities of one request, as LiteLLM's auth object carries them. */
export interface LiteLLMBudgetContext {
  /** The virtual key (`token` = hashed key). */
  key?: LiteLLMBudgetFields & { token: string; key_alias?: string | null };
  /** The key's internal user. */
  user?: LiteLLMBudgetFields & { user_id: string };
  /** The key's team. */
  team?: LiteLLMBudgetFields & { team_id: string };
  /** The user's membership in the team (`max_budget_in_team`). */
  team_member?: {
    user_id: string;
    team_id: string;
    max_budget_in_team?: Usd | null;
    budget_duration?: string | null;
    started_at?: number;
  };
  /** The end user (customer) of the request. */
  end_user?: LiteLLMBudgetFields & { end_user_id: string };
  organization?: LiteLLMBudgetFields & { organization_id: string };
  /** The proxy-wide budget (`litellm_settings.max_budget` + `budget_duration`). */
  global?: { max_budget?: Usd | null; budget_duration?: string | null; started_at?: number };
}

const isSet = (v: Usd | null | undefined): v is Usd => v !== null && v !== undefined && v !== "";
const isPositive = (v: Usd | null | undefined): v is Usd => isSet(v) && Number(v) > 0;

function entity(
  scope: BudgetScope,
  id: string,
  f: LiteLLMBudgetFields,
  extra: Partial<BudgetSpec> = {},
  needPositive = false,
): BudgetSpec[] {
  const has = needPositive ? isPositive(f.max_budget) : isSet(f.max_budget);
  if (!has && !isSet(f.soft_budget)) return [];
  return [
    {
      scope,
      id,
      maxBudget: has ? (f.max_budget as Usd) : null,
      ...(isSet(f.soft_budget) ? { softBudget: f.soft_budget } : {}),
      duration: f.budget_duration ?? null,
      ...(f.started_at === undefined ? {} : { startedAt: f.started_at }),
      ...extra,
    },
  ];
}

function modelBudgets(
  scope: BudgetScope,
  id: string,
  f: LiteLLMBudgetFields,
  skip: ReadonlySet<string>,
  extra: Partial<BudgetSpec> = {},
): BudgetSpec[] {
  const out: BudgetSpec[] = [];
  for (const [model, b] of Object.entries(f.model_max_budget ?? {})) {
    if (skip.has(model)) continue;
    const max = isSet(b.max_budget) ? b.max_budget : b.budget_limit;
    // LiteLLM: a negative max_budget means unlimited.
    if (!isSet(max) || Number(max) < 0) continue;
    out.push({
      scope,
      id,
      model,
      maxBudget: max,
      duration: b.budget_duration ?? b.time_period ?? null,
      ...(f.started_at === undefined ? {} : { startedAt: f.started_at }),
      ...extra,
    });
  }
  return out;
}

/**
 * The budgets LiteLLM enforces for one request, as specs for `reserve`:
 * - key, team, team member (`max_budget_in_team`), end user: when `max_budget` (or `soft_budget`) is set;
 * - the user's personal budget only when the key has no team (LiteLLM: "if a key belongs to a team, only the
 *   team and team-member budgets apply");
 * - organization and global only when `max_budget > 0`;
 * - `model_max_budget` entries of key, user (personal keys only), team and end user, as per-model budgets (the
 *   engine keeps those of the requested model); a key's entry for a model replaces the team's entry for it.
 */
export function litellmBudgets(ctx: LiteLLMBudgetContext): BudgetSpec[] {
  if (typeof ctx !== "object" || ctx === null) {
    throw new TollgateError("INVALID_ARGUMENT", "litellmBudgets takes { key?, user?, team?, team_member?, ... }");
  }
  const out: BudgetSpec[] = [];
  const { key, user, team, team_member: member, end_user: endUser, organization: org, global } = ctx;
  const keyModels = new Set(Object.keys(key?.model_max_budget ?? {}));
  const none = new Set<string>();
  if (key !== undefined) {
    const alias = key.key_alias ?? undefined;
    const extra = alias === undefined ? {} : { alias };
    out.push(...entity("key", key.token, key, extra), ...modelBudgets("key", key.token, key, none, extra));
  }
  if (user !== undefined && team === undefined) {
    out.push(...entity("user", user.user_id, user), ...modelBudgets("user", user.user_id, user, none));
  }
  if (team !== undefined) {
    out.push(...entity("team", team.team_id, team), ...modelBudgets("team", team.team_id, team, keyModels));
  }
  if (member !== undefined && isSet(member.max_budget_in_team)) {
    out.push({
      scope: "team_member",
      id: member.user_id,
      teamId: member.team_id,
      maxBudget: member.max_budget_in_team,
      duration: member.budget_duration ?? null,
      ...(member.started_at === undefined ? {} : { startedAt: member.started_at }),
    });
  }
  if (endUser !== undefined) {
    out.push(
      ...entity("end_user", endUser.end_user_id, endUser),
      ...modelBudgets("end_user", endUser.end_user_id, endUser, none),
    );
  }
  if (org !== undefined) out.push(...entity("organization", org.organization_id, org, {}, true));
  if (global !== undefined) out.push(...entity("global", "proxy", global, {}, true));
  return out;
}
