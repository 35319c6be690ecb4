/**
 * The reliability drills of docs/reliability.md (`STANDARD_DRILLS`), with real caller processes and dedicated Redis
 * processes (they are paused and killed here). Each drill asserts exact counts after the dust settles: what Redis
 * holds equals what the callers were told (admissions, tokens and cost settled exactly once, no orphaned hold, lease
 * or open ticket). The figures are printed as one JSON line per drill (`DRILL {...}`); `pnpm drills` prints them as
 * the table of docs/reliability.md.
 */
import {
  type RedisClusterHandle,
  type RedisServerHandle,
  runBurstDrill,
  STANDARD_DRILLS,
  startRedisCluster,
  startRedisServer,
} from "@tollgate/test-servers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let server: RedisServerHandle;
let cluster: RedisClusterHandle;
beforeAll(async () => {
  [server, cluster] = await Promise.all([startRedisServer(), startRedisCluster()]);
}, 60_000);
afterAll(async () => {
  await Promise.all([server?.stop(), cluster?.stop()]);
});

describe("reliability drills (real caller processes, default store options unless named)", () => {
  for (const d of STANDARD_DRILLS) {
    it(d.options.name, async () => {
      const f = await runBurstDrill({ ...d.options, ...(d.topology === "cluster" ? { cluster } : { server }) });
      console.log(`DRILL ${JSON.stringify(f)}`);
      // Exact after the dust settles: Redis holds what callers were told, nothing orphaned, nothing left to send.
      expect(f.discrepancies).toEqual([]);
      expect(f.settleGaveUp).toBe(0);
      expect(f.pendingAfterFlush).toBe(0);
      const fault = d.options.fault;
      if (!fault) {
        // A burst at the default options: exactly the limit, and no call timed out.
        expect(f.admitted).toBe(d.options.requestLimit ?? 50);
        expect(f.failed).toEqual({});
      } else if (fault.kind === "pause") {
        // The pause caught calls: they waited for the timeout, then the policy answered.
        expect(f.slowestAdmitMs).toBeGreaterThan(900);
      } else {
        // The killed master's keys were lost (not compared); the store recovered by itself.
        expect(f.lostWithNode).toBe(1);
        expect(f.recoveryMs).toBeDefined();
        if (d.options.store?.failurePolicy === "fallback") expect(f.fallback).toBeGreaterThan(0);
        else expect(f.failed.STORE_UNAVAILABLE).toBeGreaterThan(0);
      }
    }, 90_000);
  }
});
