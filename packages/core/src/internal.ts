/**
 * @tollgate/core/internal: the engine's parts, for Tollgate's own packages (budgets, the gate, the stores) and for
 * in-process stores that offer the flat capability. No stability promise: they change with the engine.
 *
 * - flat.ts: the flat batch and answer (the in-process fast path) and their conversions to the contract's form;
 * - call.ts: the one way to a store (flat capability or object form) and the store's clock;
 * - keys.ts: interned descriptor keys;
 * - plan.ts: descriptors → windows and gauges of a batch, what a reservation keeps, the deltas that finish it;
 * - status.ts: statuses and denials.
 */
export * from "./call.js";
export { isNonNegativeInteger, isSafeInteger } from "./errors.js";
export * from "./flat.js";
export * from "./keys.js";
export { outcomeOf } from "./limiter.js";
export * from "./plan.js";
export { validateIdentity, validateLimits } from "./scopes.js";
export * from "./status.js";
export { isName } from "./validate.js";
