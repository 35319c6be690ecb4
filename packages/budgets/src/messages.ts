import { TollgateError } from "@tollgate/core";
import { type Nano, nanoToUsdNumber, pythonFloat } from "./money.js";
import type { BudgetDenial, BudgetRef } from "./types.js";

const py = (nano: Nano): string => pythonFloat(nanoToUsdNumber(nano));

const ENTITY: Record<BudgetRef["scope"], string> = {
  key: "Key",
  user: "User",
  team: "Team",
  team_member: "Team Member",
  end_user: "End User",
  organization: "Organization",
  global: "Global",
};

/**
 * LiteLLM's budget-exceeded message for a scope, amounts printed like Python floats:
 * - key, global: `Budget has been exceeded! Current cost: X, Max budget: Y`
 * - team: `Budget has been exceeded! Team={id} Current cost: X, Max budget: Y`
 * - organization: `Budget has been exceeded! Organization={id} Current cost: X, Max budget: Y`
 * - user: `ExceededBudget: User={id} over budget. Spend=X, Budget=Y`
 * - team member: `Budget has been exceeded! User={user} in Team={team} Current cost: X, Max budget: Y`
 * - end user: `ExceededBudget: End User={id} over budget. Spend=X, Budget=Y`
 * - per-model key: `LiteLLM Virtual Key: {id}, key_alias: {alias}, exceeded budget for model={model}`
 * - per-model user: `LiteLLM User: {id}, exceeded budget for model={model}` (team and end user alike, Tollgate's
 *   extension: `LiteLLM Team: ...`, `LiteLLM End User: ...`).
 */
export function formatBudgetExceeded(d: { budget: BudgetRef & { alias?: string }; spend: Nano; max: Nano }): string {
  if (typeof d !== "object" || d === null || typeof d.budget !== "object" || d.budget === null) {
    throw new TollgateError("INVALID_ARGUMENT", "formatBudgetExceeded takes { budget: { scope, id }, spend, max }");
  }
  const { budget } = d;
  const spend = py(d.spend);
  const max = py(d.max);
  if (budget.model !== undefined) {
    switch (budget.scope) {
      case "key":
        return `LiteLLM Virtual Key: ${budget.id}, key_alias: ${budget.alias ?? "None"}, exceeded budget for model=${budget.model}`;
      case "user":
        return `LiteLLM User: ${budget.id}, exceeded budget for model=${budget.model}`;
      case "team":
        return `LiteLLM Team: ${budget.id}, exceeded budget for model=${budget.model}`;
      case "end_user":
        return `LiteLLM End User: ${budget.id}, exceeded budget for model=${budget.model}`;
      default:
        return `Budget has been exceeded! ${ENTITY[budget.scope]}=${budget.id} Model=${budget.model} Current cost: ${spend}, Max budget: ${max}`;
    }
  }
  switch (budget.scope) {
    case "key":
    case "global":
      return `Budget has been exceeded! Current cost: ${spend}, Max budget: ${max}`;
    case "team":
      return `Budget has been exceeded! Team=${budget.id} Current cost: ${spend}, Max budget: ${max}`;
    case "organization":
      return `Budget has been exceeded! Organization=${budget.id} Current cost: ${spend}, Max budget: ${max}`;
    case "user":
      return `ExceededBudget: User=${budget.id} over budget. Spend=${spend}, Budget=${max}`;
    case "team_member":
      return `Budget has been exceeded! User=${budget.id} in Team=${budget.teamId ?? "None"} Current cost: ${spend}, Max budget: ${max}`;
    case "end_user":
      return `ExceededBudget: End User=${budget.id} over budget. Spend=${spend}, Budget=${max}`;
  }
}

/**
 * LiteLLM's error body for a budget denial: `{"error":{"message","type":"budget_exceeded","param":null,"code":"429"}}`.
 * @param status HTTP status written into `code`. @default 429 (LiteLLM's newest; older releases used 400)
 */
export function budgetErrorBody(
  denial: Pick<BudgetDenial, "message">,
  status = 429,
): { error: { message: string; type: "budget_exceeded"; param: null; code: string } } {
  if (typeof denial !== "object" || denial === null || typeof denial.message !== "string") {
    throw new TollgateError("INVALID_ARGUMENT", "budgetErrorBody takes a budget denial (result.denial)");
  }
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new TollgateError("INVALID_ARGUMENT", `status must be an HTTP status code, got ${String(status)}`);
  }
  return { error: { message: denial.message, type: "budget_exceeded", param: null, code: String(status) } };
}
