/**
 * Shared setup of the store-upstash tests: a real redis-server (started per test file, so request counts and
 * SCRIPT FLUSH never disturb other suites), the Upstash REST test server in front of it, and the real
 * `@upstash/redis` client talking to that server over HTTP.
 */
import {
  type RedisServerHandle,
  startRedisServer,
  startUpstashRestServer,
  type UpstashRestServer,
} from "@tollgate/test-servers";
import { Redis as Upstash } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";

export interface Harness {
  redis: RedisServerHandle;
  rest: UpstashRestServer;
  /** Direct TCP client on the same redis-server, to inspect and corrupt data. */
  direct: IORedis;
  /** A real `@upstash/redis` client for the REST server (default options unless overridden). */
  client(
    overrides?: Partial<{ token: string; enableAutoPipelining: boolean; automaticDeserialization: boolean }>,
  ): Upstash;
  stop(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const redis = await startRedisServer();
  const rest = await startUpstashRestServer({ redisUrl: redis.url });
  const direct = new IORedis(redis.url);
  return {
    redis,
    rest,
    direct,
    client: (overrides = {}) => new Upstash({ url: rest.url, token: rest.token, enableTelemetry: false, ...overrides }),
    async stop() {
      direct.disconnect();
      await rest.close();
      await redis.stop();
    },
  };
}

export const uid = (): string => Math.random().toString(36).slice(2, 10);
