export type { ProvidedRedis, ProvidedRedisCluster } from "./global-setup.js";
export {
  assertBinary,
  freePort,
  type RedisClusterHandle,
  type RedisServerHandle,
  startRedisCluster,
  startRedisServer,
} from "./redis.js";
export { startUpstashRestServer, type UpstashRestServer, type UpstashRestServerOptions } from "./upstash-rest.js";
