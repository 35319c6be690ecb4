/**
 * Tables of the proxy's database (LiteLLM's entities, in Tollgate's own layout). The same schema runs on SQLite and
 * PostgreSQL, so it keeps to types both have:
 * - ids and text: `text`;
 * - JSON documents (`metadata`, `models`, `model_max_budget`, …): `text` holding JSON;
 * - instants: `bigint` milliseconds since the epoch (UTC); money the proxy adds up: `bigint` nano-USD (exact);
 * - maxima configured by people (`max_budget`, `soft_budget`): `double precision` USD, as LiteLLM stores them;
 * - flags: `integer` 0/1.
 */

/** `budgets`: reusable budgets (LiteLLM's `LiteLLM_BudgetTable`), also the budgets of members and organizations. */
export interface BudgetRow {
  budget_id: string;
  max_budget: number | null;
  soft_budget: number | null;
  max_parallel_requests: number | null;
  tpm_limit: number | null;
  rpm_limit: number | null;
  /** JSON `{model: {max_budget|budget_limit, budget_duration|time_period}}` or null. */
  model_max_budget: string | null;
  budget_duration: string | null;
  /** When the current `budget_duration` was set (anchors `3d`-style grids). */
  budget_started_at: number | null;
  created_at: number;
  created_by: string | null;
  updated_at: number;
  updated_by: string | null;
}

export interface OrganizationRow {
  organization_id: string;
  organization_alias: string | null;
  budget_id: string | null;
  /** JSON object. */
  metadata: string;
  /** JSON array of model names. */
  models: string;
  spend_nano: number;
  created_at: number;
  created_by: string | null;
  updated_at: number;
  updated_by: string | null;
}

export interface OrganizationMemberRow {
  organization_id: string;
  user_id: string;
  user_role: string | null;
  spend_nano: number;
  budget_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface TeamRow {
  team_id: string;
  team_alias: string | null;
  organization_id: string | null;
  /** JSON object; holds `model_rpm_limit`, `model_tpm_limit`, `team_member_budget_id` like LiteLLM's. */
  metadata: string;
  max_budget: number | null;
  soft_budget: number | null;
  spend_nano: number;
  /** JSON array. */
  models: string;
  max_parallel_requests: number | null;
  tpm_limit: number | null;
  rpm_limit: number | null;
  budget_duration: string | null;
  budget_started_at: number | null;
  blocked: number;
  /** JSON object. */
  model_max_budget: string;
  created_at: number;
  created_by: string | null;
  updated_at: number;
  updated_by: string | null;
}

export interface TeamMemberRow {
  team_id: string;
  user_id: string;
  /** `admin` or `user`. */
  role: string;
  user_email: string | null;
  spend_nano: number;
  /** The member's budget row (`max_budget_in_team`, member rpm/tpm), or null. */
  budget_id: string | null;
  created_at: number;
}

export interface UserRow {
  user_id: string;
  user_alias: string | null;
  user_email: string | null;
  user_role: string;
  organization_id: string | null;
  max_budget: number | null;
  spend_nano: number;
  /** JSON array. */
  models: string;
  /** JSON object. */
  metadata: string;
  max_parallel_requests: number | null;
  tpm_limit: number | null;
  rpm_limit: number | null;
  budget_duration: string | null;
  budget_started_at: number | null;
  /** JSON object. */
  model_max_budget: string;
  created_at: number;
  updated_at: number;
}

/** `virtual_keys`: LiteLLM's `LiteLLM_VerificationToken`; `token` is the sha256 hex of the secret. */
export interface KeyRow {
  token: string;
  /**
   * The key's stable id: its first hash, kept when the secret is regenerated. Budgets and rate limits count under
   * it, so regenerating a key never resets what it has spent.
   */
  key_id: string;
  key_name: string;
  key_alias: string | null;
  spend_nano: number;
  expires: number | null;
  /** JSON arrays / objects. */
  models: string;
  aliases: string;
  config: string;
  permissions: string;
  metadata: string;
  allowed_cache_controls: string;
  model_max_budget: string;
  user_id: string | null;
  team_id: string | null;
  organization_id: string | null;
  budget_id: string | null;
  blocked: number;
  max_parallel_requests: number | null;
  tpm_limit: number | null;
  rpm_limit: number | null;
  max_budget: number | null;
  soft_budget: number | null;
  budget_duration: string | null;
  budget_started_at: number | null;
  created_at: number;
  created_by: string | null;
  updated_at: number;
  updated_by: string | null;
}

/** `end_users`: LiteLLM's customers (`LiteLLM_EndUserTable`). */
export interface EndUserRow {
  user_id: string;
  alias: string | null;
  spend_nano: number;
  allowed_model_region: string | null;
  default_model: string | null;
  budget_id: string | null;
  blocked: number;
  created_at: number;
}

/** `spend_logs`: one row per finished request (LiteLLM's `LiteLLM_SpendLogs`). */
export interface SpendLogRow {
  request_id: string;
  call_type: string;
  /** Hashed key, `""` for the master key or no key. */
  api_key: string;
  /** The key's stable id (see `KeyRow.key_id`), null without a key. */
  key_id: string | null;
  spend_nano: number;
  total_tokens: number;
  prompt_tokens: number;
  completion_tokens: number;
  start_time: number;
  end_time: number;
  model: string;
  model_group: string;
  api_base: string;
  user_id: string | null;
  team_id: string | null;
  organization_id: string | null;
  end_user: string | null;
  key_alias: string | null;
  /** `success` or `failure`. */
  status: string;
  /** JSON object. */
  metadata: string;
  /** JSON array. */
  request_tags: string;
  requester_ip_address: string | null;
  /** JSON array of the budget periods (store keys) the request was charged to; null when none. */
  budgets: string | null;
}

/** One budget period a request was charged to (part of a ledger row, not a table of its own). */
export interface ChargedPeriod {
  /** The budget's store key of that period, e.g. `{budget:key:<hash>}:1d:<end>`. */
  budget: string;
  /** End of the period (ms); null for a budget that never resets. */
  period_end: number | null;
  spend_nano: number;
}

/**
 * `budget_period_spend`: the ledger's total per budget period (added in the same transaction as the rows charged to
 * it, only for rows actually inserted), so counters are rebuilt per period, exactly, without scanning the logs.
 */
export interface BudgetPeriodSpendRow {
  budget: string;
  period_end: number | null;
  spend_nano: number;
}

export interface Database {
  budgets: BudgetRow;
  organizations: OrganizationRow;
  organization_members: OrganizationMemberRow;
  teams: TeamRow;
  team_members: TeamMemberRow;
  users: UserRow;
  virtual_keys: KeyRow;
  end_users: EndUserRow;
  spend_logs: SpendLogRow;
  budget_period_spend: BudgetPeriodSpendRow;
}
