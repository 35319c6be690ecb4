/**
 * @tollgate/redis-scripts: the Lua scripts of Tollgate's Redis and Upstash stores, their encoders and
 * decoders, a generic script-backed `CounterStore`, and the failure policy both remote stores share.
 * Runs on Node and edge runtimes (no Node-only APIs).
 */
export {
  type AdjustTicket,
  type AdmitTicket,
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
export {
  baseKey,
  counterKeys,
  DEFAULT_PREFIX,
  gaugeKey,
  hasHashTag,
  slotTag,
  ticketKey,
  windowKey,
} from "./keys.js";
export {
  assembleRemoteStore,
  type RemoteStoreOptions,
  type RemoteStoreParts,
  type ResolvedRemoteOptions,
  resolveRemoteOptions,
} from "./remote-store.js";
export { type ReplayDropReason, ReplayQueue, type ReplayQueueOptions } from "./replay-queue.js";
export {
  createScriptStore,
  DEFAULT_TICKET_KEEP_MS,
  type ScriptStore,
  type ScriptStoreOptions,
} from "./script-store.js";
export {
  ADJUST_SCRIPT,
  ADMIT_SCRIPT,
  type LuaScript,
  READ_SCRIPT,
  RENEW_SCRIPT,
  SCRIPTS,
  type ScriptName,
} from "./scripts.js";
