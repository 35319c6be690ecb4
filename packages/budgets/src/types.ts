import type { Nano, Usd } from "./money.js";
import type { Usage } from "./pricing.js";
import type { ResetMode } from "./schedule.js";

/**
 * Who a budget belongs to, with LiteLLM's entities: a virtual key, an internal user, a team, a user inside one
 * team (`max_budget_in_team`), an end user (customer), an organization, or the whole proxy (`global`).
 */
export type BudgetScope = "key" | "user" | "team" | "team_member" | "end_user" | "organization" | "global";

/** The identity of one budget: scope, id, and for per-model budgets the model. */
export interface BudgetRef {
  scope: BudgetScope;
  /**
   * The entity id: hashed key, user id, team id, end-user id, organization id; for `team_member` the user id;
   * for `global` any label (e.g. `"proxy"`). Non-empty, without `{` or `}`.
   */
  id: string;
  /** For `team_member`: the team id. */
  teamId?: string;
  /** Per-model budget (LiteLLM `model_max_budget`): applies only to requests for this model. */
  model?: string;
}

/** One budget as the proxy configures it. */
export interface BudgetSpec extends BudgetRef {
  /** Maximum spend per period in USD; `null` tracks spend without a cap. */
  maxBudget: Usd | null;
  /** Spend that fires a `soft_budget` event once per period; never blocks. @default none */
  softBudget?: Usd | null;
  /** LiteLLM duration (`30s`, `30m`, `30h`, `30d`, `2w`, `1mo`); `null`/`"none"`/`""` never resets. @default null */
  duration?: string | null;
  /** `calendar` (LiteLLM's standardized boundaries) or `rolling` from {@link startedAt}. @default the engine's `reset` */
  reset?: ResetMode;
  /** IANA zone of calendar boundaries. @default the engine's `timeZone` ("UTC") */
  timeZone?: string;
  /** When the budget started (ms): required for rolling budgets; anchors `3d`, `2w`, `2mo` grids. @default none */
  startedAt?: number;
  /** Key alias, used by LiteLLM's per-model key message. @default none */
  alias?: string;
  /** Count and report, never deny. @default false */
  shadow?: boolean;
}

/** Why a request was denied: the binding budget. */
export interface BudgetDenial {
  budget: BudgetRef;
  /** Committed spend in the current period (nano-USD), before this request. */
  spend: Nano;
  /** Amount held by in-flight reservations (nano-USD). */
  reserved: Nano;
  /** What this request asked to reserve (nano-USD; 0 in check mode). */
  requested: Nano;
  /** The budget's maximum (nano-USD). */
  max: Nano;
  /** When the period ends and spend resets (ms since epoch), or `null` for a budget that never resets. */
  resetAt: number | null;
  /** LiteLLM's message for this scope (see `formatBudgetExceeded`). */
  message: string;
  /** The store's clock at the decision. */
  now: number;
}

/** A settled charge, written to the {@link SpendSink}. */
export interface SpendRecord {
  requestId: string;
  model: string;
  /** Every budget the charge was counted against. */
  scopes: BudgetRef[];
  /**
   * The period each budget of `scopes` was charged to (same order): its `Period.id`, which names the budget's
   * schedule (duration, reset mode, zone, start) and the period's end, e.g. `"1d:1767312000000"`, `"never"`.
   * `hydrate` counts a record only toward the budget windows it names, so a daily and a monthly budget of one key each
   * get exactly the requests charged to them. Records written before this field existed lack it: `hydrate` then
   * attributes them by identity and time.
   */
  periods?: string[];
  usage: Usage;
  /** Exact cost in nano-USD. */
  cost: Nano;
  /** Exact cost as a decimal USD string. */
  costUsd: string;
  /** The store's clock when the charge was applied (ms since epoch). */
  time: number;
}

/** Where settled charges go (the proxy persists them). A rejected promise or a throw becomes a `sink_error` event. */
export interface SpendSink {
  write(record: SpendRecord): void | Promise<void>;
}

/** Events: alerts fire once per budget period, on the charge that crosses them. */
export type BudgetEvent =
  | {
      type: "threshold";
      budget: BudgetRef;
      /** The crossed fraction of the maximum, e.g. 0.8. */
      threshold: number;
      spend: Nano;
      max: Nano;
      resetAt: number | null;
      requestId: string;
    }
  | { type: "soft_budget"; budget: BudgetRef; spend: Nano; softBudget: Nano; resetAt: number | null; requestId: string }
  | { type: "unknown_model"; model: string; requestId: string }
  /**
   * A budget's duration was read the lenient way LiteLLM's parser reads it (`"1hr"` as `1h`, `"30min"` as `30m`):
   * it loads, but say what you mean. Fires when the budget is first compiled (once per distinct spec, usually).
   */
  | { type: "duration_warning"; budget: BudgetRef; duration: string; readAs: string; message: string }
  | { type: "sink_error"; error: unknown; record: SpendRecord };
