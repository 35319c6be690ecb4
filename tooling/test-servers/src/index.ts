export {
  createDatabase,
  findPostgresBin,
  type PostgresHandle,
  type StartPostgresOptions,
  startPostgres,
} from "./postgres.js";
export {
  type RedisClusterHandle,
  type RedisServerHandle,
  startRedisCluster,
  startRedisServer,
} from "./redis.js";
export { timed } from "./timing.js";
export { startUpstashRestServer, type UpstashRestServer } from "./upstash-rest.js";
