/**
 * @tollgate/core: the public API. Everything else (the flat fast path, planning, statuses, the store access) is
 * behind `@tollgate/core/internal`, for Tollgate's own packages and in-process stores, without a stability promise.
 */
export {
  type DenialBody,
  denialBody,
  formatRateLimitMessage,
  formatResetDuration,
  formatUtcTimestamp,
  type HeaderStatus,
  type RateLimitHeaderOptions,
  rateLimitHeaders,
  retryAfterSeconds,
} from "./denials.js";
export { StoreUnavailableError, TollgateError, type TollgateErrorCode } from "./errors.js";
export { createIdGenerator } from "./ids.js";
export {
  type Admission,
  type AdmitOptions,
  createLimiter,
  Limiter,
  type LimiterOptions,
  type Reservation,
  type ReservationState,
  type SettleUsage,
} from "./limiter.js";
export {
  applyImplicitOutputCap,
  capAndEstimate,
  estimateRequestTokens,
  type LlmCallType,
  outputTokenFloor,
  type TokenCountMode,
  type TokenEstimate,
  type TokenEstimateOptions,
  tokensFromUsage,
} from "./llm.js";
export {
  DEFAULT_WINDOW_MS,
  descriptorKey,
  type ScopeLimits,
  type StandardScope,
  scopes,
  validateDescriptor,
} from "./scopes.js";
export {
  type AdjustBatch,
  type AdjustResult,
  type AdjustWindowOp,
  type AdmitBatch,
  type AdmitResult,
  type CounterDelta,
  type CounterOp,
  type CounterState,
  type CounterStore,
  type DeniedAt,
  type GaugeOp,
  type GaugeState,
  type LeaseRef,
  type LeaseSpec,
  type ReadQuery,
  type ReadResult,
  STORE_CONTRACT_VERSION,
  type StoreCapabilities,
  type TicketOp,
  type TicketState,
  type WindowAlgorithm,
  type WindowOp,
  type WindowSpec,
  type WindowState,
} from "./store.js";
export type { Denial, Descriptor, LimitStatus, LimitType, Outcome, TokenAmounts, TokenType } from "./types.js";
export { checkStore, validateAdjustBatch, validateAdmitBatch, validateReadQuery, validateRenew } from "./validate.js";
