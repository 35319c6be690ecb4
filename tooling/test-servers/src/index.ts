export type { ProvidedRedis, ProvidedRedisCluster } from "./global-setup.js";
export {
  assertBinary,
  freePort,
  type RedisClusterHandle,
  type RedisServerHandle,
  startRedisCluster,
  startRedisServer,
} from "./redis.js";
export { timed } from "./timing.js";
export {
  startUpstashRestServer,
  type UpstashRestRequestRecord,
  type UpstashRestServer,
  type UpstashRestServerOptions,
  type UpstashRestTamper,
} from "./upstash-rest.js";
