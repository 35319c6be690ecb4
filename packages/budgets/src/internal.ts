/**
 * @tollgate/budgets/internal: the budget engine's parts, for `@tollgate/gate` (budgets in a batch shared with rate
 * limits). No stability promise.
 */
export { ADMITTED, BudgetEngine, type BudgetPlan, RETRY } from "./budgets.js";
export { type CompiledBudget, periodKey } from "./compile.js";
export type { BudgetReservation } from "./reservation.js";
