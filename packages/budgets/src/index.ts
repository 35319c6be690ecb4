export {
  type BudgetStatus,
  type Budgets,
  type BudgetsOptions,
  createBudgets,
  type HydrateTotal,
  type ReserveRequest,
  type ReserveResult,
} from "./budgets.js";
export { baseKeyOf, type CompiledBudget, compileBudget, modelMatches } from "./compile.js";
export {
  type Duration,
  type DurationUnit,
  formatDuration,
  type ParseDurationOptions,
  parseDuration,
} from "./duration.js";
export {
  type LiteLLMBudgetContext,
  type LiteLLMBudgetFields,
  type LiteLLMModelBudget,
  litellmBudgets,
} from "./litellm.js";
export { budgetErrorBody, formatBudgetExceeded } from "./messages.js";
export {
  formatUsd,
  MAX_NANO,
  NANO_PER_USD,
  type Nano,
  nanoToUsdNumber,
  parseUsd,
  pythonFloat,
  type SubNano,
  type Usd,
} from "./money.js";
export { DEFAULT_PRICES, PRICES_DATE } from "./prices.js";
export {
  checkUsage,
  compilePrice,
  costOf,
  createPriceBook,
  type ModelPrice,
  type ModelPriceInput,
  type PriceBook,
  type PriceTable,
  type Usage,
  usageFromAnthropic,
  usageFromOpenAI,
  worstCaseCost,
} from "./pricing.js";
export type { Reservation, SettleResult } from "./reservation.js";
export { createSchedule, type Period, type ResetMode, type Schedule, type ScheduleOptions } from "./schedule.js";
export { throttledLimit } from "./throttle.js";
export type { BudgetDenial, BudgetEvent, BudgetRef, BudgetScope, BudgetSpec, SpendRecord, SpendSink } from "./types.js";
export { checkTimeZone } from "./tz.js";
