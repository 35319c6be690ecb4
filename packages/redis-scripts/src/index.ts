/**
 * @tollgate/redis-scripts: the Lua scripts of Tollgate's Redis and Upstash stores, their encoders and
 * decoders, a generic script-backed `CounterStore`, and the failure policy both remote stores share.
 * Runs on Node and edge runtimes (no Node-only APIs).
 */
export {
  decodeAdjust,
  decodeAdmit,
  decodeRead,
  decodeRenew,
  type EncodeOptions,
  encodeAdjust,
  encodeAdmit,
  encodeRead,
  encodeRenew,
  type ScriptCall,
} from "./codec.js";
export { type Listener, Listeners } from "./emitter.js";
export { CORRUPT_MARKER, isDataCorruptError, isNoScriptError, toStoreError } from "./errors.js";
export { type EvalPrimitives, evalshaWithFallback, type ScriptExecutor } from "./executor.js";
export {
  type FailurePolicy,
  type FailurePolicyOptions,
  perInstanceLimit,
  type ResilientStore,
  type ResolvedFailurePolicyOptions,
  resolveFailurePolicyOptions,
  type StoreHealth,
  type StoreHealthEvent,
  withFailurePolicy,
} from "./failure-policy.js";
export { baseKey, counterKeys, DEFAULT_PREFIX, gaugeKey, hasHashTag, windowKey } from "./keys.js";
export { createScriptStore, type ScriptStoreOptions } from "./script-store.js";
export {
  ADJUST_SCRIPT,
  ADMIT_SCRIPT,
  type LuaScript,
  READ_SCRIPT,
  RENEW_SCRIPT,
  SCRIPTS,
  type ScriptName,
} from "./scripts.js";
