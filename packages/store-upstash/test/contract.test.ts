import { runStoreContract } from "@tollgate/store-test-suite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUpstashStore } from "../src/index.js";
import { type Harness, startHarness } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.stop();
});

/** A store whose scripts use an injected clock instead of Redis TIME, so the suite can move time. */
function withClock(make: (testClock: () => number) => ReturnType<typeof createUpstashStore>) {
  let now = Date.now();
  return {
    store: make(() => now),
    advance: (ms: number) => {
      now += ms;
    },
  };
}

// The real @upstash/redis client -> HTTP -> the Upstash REST test server -> a real redis-server.
runStoreContract({
  name: "upstash (REST test server)",
  create: ({ prefix }) =>
    withClock((testClock) =>
      // Generous timeout: the suite fires 200 concurrent HTTP requests on a shared, busy test machine.
      createUpstashStore({ client: h.client(), prefix, testClock, timeoutMs: 10_000 }),
    ),
});

const url = process.env.UPSTASH_REDIS_REST_URL;
const token = process.env.UPSTASH_REDIS_REST_TOKEN;
if (url && token) {
  runStoreContract({
    name: "upstash (live database from UPSTASH_REDIS_REST_URL)",
    create: ({ prefix }) =>
      withClock((testClock) => createUpstashStore({ url, token, prefix, testClock, timeoutMs: 10_000 })),
  });
} else {
  describe("CounterStore contract: upstash (live database)", () => {
    it("was not run: UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are not set", () => {
      console.log(
        "[store-upstash] live Upstash contract suite NOT RUN: set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN to run it",
      );
      expect(Boolean(url && token)).toBe(false);
    });
  });
}
