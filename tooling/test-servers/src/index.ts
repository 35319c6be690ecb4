export {
  type BurstDrillFigures,
  type BurstDrillOptions,
  DRILL_TABLE_HEADER,
  type DrillFault,
  type DrillOutcome,
  drillRow,
  runBurstDrill,
  STANDARD_DRILLS,
  type StandardDrill,
} from "./drills.js";
export {
  type BackgroundLoad,
  type Fleet,
  type FleetEvent,
  type FleetInstance,
  type FleetOptions,
  type FleetRequestOptions,
  type FleetResponse,
  type FleetStore,
  type LoadOptions,
  type LoadRequest,
  type LoadResult,
  processCpuMicros,
  runLoad,
  startFleet,
  startLoad,
  waitUntil,
} from "./fleet.js";
export {
  type OpenAIUpstream,
  type OpenAIUpstreamOptions,
  startOpenAIUpstream,
  type UpstreamBehaviour,
} from "./openai-upstream.js";
export {
  createDatabase,
  findPostgresBin,
  type PostgresHandle,
  type StartPostgresOptions,
  startPostgres,
} from "./postgres.js";
export {
  PROXY_CLI,
  type ProxyProcess,
  type ProxyProcessOptions,
  runProxyCli,
  startProxyProcess,
} from "./proxy-process.js";
export {
  type RedisClusterHandle,
  type RedisClusterNodeHandle,
  type RedisServerHandle,
  type RedisServerOptions,
  startRedisCluster,
  startRedisServer,
} from "./redis.js";
export { timed } from "./timing.js";
export { startUpstashRestServer, type UpstashRestServer } from "./upstash-rest.js";
