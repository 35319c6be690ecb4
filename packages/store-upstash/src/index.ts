/**
 * @tollgate/store-upstash: Tollgate's `CounterStore` on Upstash Redis over its REST API, for serverless and
 * edge runtimes. Same Lua scripts and failure policy as `@tollgate/store-redis`.
 */

export type {
  FailurePolicy,
  RemoteStoreOptions,
  ResilientStore,
  StoreHealth,
  StoreHealthEvent,
} from "@tollgate/redis-scripts";
export { requesterOf, type UpstashRequester, upstashExecutor } from "./executor.js";
export { createUpstashStore, DEFAULT_UPSTASH_TIMEOUT_MS, type UpstashStoreOptions } from "./store.js";
