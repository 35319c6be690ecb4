import { type AdmitBatch, type LeaseRef, TollgateError } from "@tollgate/core";
import { ADMIT_SCRIPT, SCRIPTS, type StoreHealthEvent } from "@tollgate/redis-scripts";
import { timed } from "@tollgate/test-servers";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createUpstashStore, type UpstashStoreOptions } from "../src/index.js";
import { type Harness, startHarness, uid } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.stop();
});

const stores: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  h.rest.tamper(undefined);
  h.rest.resume();
  for (const s of stores.splice(0)) await s.close();
});

function store(options: UpstashStoreOptions = {}) {
  const s = createUpstashStore({ client: h.client(), prefix: `tgu:${uid()}:`, timeoutMs: 5_000, ...options });
  stores.push(s);
  return s;
}

/** One window with requests and tokens, one gauge, and a hold: every kind of key the scripts touch. */
function batch(key: string, leaseId = `lease-${uid()}`): AdmitBatch {
  return {
    windows: [
      {
        key,
        windowMs: 60_000,
        algorithm: "fixed",
        counters: [
          { name: "requests", limit: 1_000, amount: 1, enforce: true },
          { name: "tokens", limit: 1_000_000, amount: 10, hold: 100, enforce: true },
        ],
      },
    ],
    gauges: [{ key, name: "max_parallel_requests", limit: 1_000, enforce: true }],
    lease: { id: leaseId, ttlMs: 30_000 },
  };
}

function leaseRef(key: string, id: string): LeaseRef {
  return { id, gauges: [{ key, name: "max_parallel_requests" }], holds: [{ key, name: "tokens" }] };
}

async function rejection(p: Promise<unknown>): Promise<TollgateError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TollgateError);
  return err as TollgateError;
}

describe("HTTP requests per operation", () => {
  it("NOSCRIPT fallback: the first admission after SCRIPT FLUSH is EVALSHA then EVAL, then exactly 1 request each", async () => {
    const s = store();
    const key = `{k:${uid()}}`;
    await h.direct.script("FLUSH");
    h.rest.resetLog();
    expect((await s.admit(batch(key))).admitted).toBe(true);
    expect(h.rest.log.map((r) => [r.path, r.commands[0]])).toEqual([
      ["/", "EVALSHA"],
      ["/", "EVAL"],
    ]);
    // EVAL cached the script: from now on one EVALSHA per admission.
    h.rest.resetLog();
    for (let i = 0; i < 20; i++) await s.admit(batch(key));
    expect(h.rest.requests).toBe(20);
    expect(new Set(h.rest.log.map((r) => `${r.path} ${r.commands.join(",")}`))).toEqual(new Set(["/ EVALSHA"]));
  });

  it("exactly 1 request per admission under 100 concurrent admissions, even with the client's auto-pipelining on", async () => {
    const prefix = `tgu:${uid()}:`;
    const s = store({ client: h.client({ enableAutoPipelining: true }), prefix });
    const key = `{k:${uid()}}`;
    await s.admit(batch(key)); // warm-up (script cached)
    h.rest.resetLog();
    const results = await Promise.all(Array.from({ length: 100 }, () => s.admit(batch(key))));
    expect(results.every((r) => r.admitted)).toBe(true);
    expect(h.rest.requests).toBe(100);
    expect(h.rest.log.every((r) => r.path === "/" && r.commands[0] === "EVALSHA")).toBe(true);
    expect(await h.direct.get(`${prefix}${key}:requests`)).toBe("101");
  });

  it("settle (adjust), release, renew and read are 1 request each", async () => {
    for (const script of SCRIPTS) await h.direct.script("LOAD", script.source); // warm: every script cached
    const s = store();
    const key = `{k:${uid()}}`;
    const id = `lease-${uid()}`;
    const admitted = await s.admit(batch(key, id));
    const start = admitted.windows[0]!.start;
    h.rest.resetLog();

    const settled = await s.adjust({
      windows: [
        {
          key,
          windowMs: 60_000,
          algorithm: "fixed",
          expectStart: start,
          counters: [
            { name: "requests", delta: 0 },
            { name: "tokens", delta: 42 },
          ],
        },
      ],
    });
    expect(settled.applied).toEqual([true]);
    expect(h.rest.requests).toBe(1);

    expect(await s.renew(leaseRef(key, id), 60_000)).toBe(2);
    expect(h.rest.requests).toBe(2);

    const released = await s.adjust({ windows: [], release: leaseRef(key, id) });
    expect(released.released).toBe(2);
    expect(h.rest.requests).toBe(3);

    const read = await s.read({
      windows: [{ key, windowMs: 60_000, algorithm: "fixed", counters: ["requests", "tokens"] }],
      gauges: [{ key, name: "max_parallel_requests" }],
    });
    expect(read.windows[0]!.counters.map((c) => [c.value, c.held])).toEqual([
      [1, 0],
      [52, 0],
    ]);
    expect(read.gauges[0]!.inFlight).toBe(0);
    expect(h.rest.requests).toBe(4);
    expect(h.rest.log.map((r) => r.commands[0])).toEqual(["EVALSHA", "EVALSHA", "EVALSHA", "EVALSHA"]);
  });

  it("bad input is rejected with a TollgateError code before any request", async () => {
    const s = store();
    h.rest.resetLog();
    const bad = batch(`{k:${uid()}}`);
    bad.windows[0]!.counters[0]!.amount = -1;
    expect((await rejection(s.admit(bad))).code).toBe("INVALID_AMOUNT");
    const noLease = batch(`{k:${uid()}}`);
    delete noLease.lease;
    expect((await rejection(s.admit(noLease))).code).toBe("INVALID_ARGUMENT");
    expect((await rejection(s.renew(leaseRef("{k}", "x"), 0))).code).toBe("INVALID_ARGUMENT");
    expect(h.rest.requests).toBe(0);
    expect(() => createUpstashStore({ url: "http://127.0.0.1:1" })).toThrow(TollgateError);
    expect(() => createUpstashStore({ client: h.client(), timeoutMs: 0 })).toThrow(/timeoutMs/);
  });

  it("bad failure-policy options are rejected with their codes, timeoutMs included", () => {
    const code = (options: UpstashStoreOptions) => {
      try {
        createUpstashStore({ client: h.client(), ...options });
      } catch (err) {
        return (err as TollgateError).code;
      }
      return undefined;
    };
    const table: Array<[UpstashStoreOptions, string]> = [
      [{ timeoutMs: 0 }, "INVALID_DURATION"],
      [{ timeoutMs: 1.5 }, "INVALID_DURATION"],
      [{ timeoutMs: "500" as never }, "INVALID_DURATION"],
      [{ retryIntervalMs: -1 }, "INVALID_DURATION"],
      [{ ticketKeepMs: -5 }, "INVALID_DURATION"],
      [{ fallbackInstances: 0 }, "INVALID_ARGUMENT"],
      [{ failurePolicy: "maybe" as never }, "INVALID_ARGUMENT"],
      [{ fallbackStore: { admit: () => 1 } as never }, "INVALID_ARGUMENT"],
      [{ prefix: 7 as never }, "INVALID_ARGUMENT"],
      [{ now: "now" as never }, "INVALID_ARGUMENT"],
      [{ testClock: 12 as never }, "INVALID_ARGUMENT"],
      [{ client: undefined, url: h.rest.url }, "INVALID_ARGUMENT"], // url without token
      [{ client: undefined, token: "t" }, "INVALID_ARGUMENT"], // token without url
      [{ client: {} as never }, "INVALID_ARGUMENT"], // not an @upstash/redis client
    ];
    for (const [options, expected] of table) expect([options, code(options)]).toEqual([options, expected]);
    expect(() => createUpstashStore(null as never)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    // Nothing was sent for any of them.
    h.rest.resetLog();
    for (const [options] of table) code(options);
    expect(h.rest.requests).toBe(0);
  });
});

describe("wire format", () => {
  it("base64 responses round-trip unicode scope values and lease ids to the exact keys in Redis", async () => {
    const prefix = `tgu:${uid()}:ü:`;
    const s = store({ prefix });
    const key = `{api_key:clé-🚦-${uid()}}`;
    const id = `bail-ñ-${uid()}`;
    h.rest.resetLog();
    const r = await s.admit(batch(key, id));
    expect(r.admitted).toBe(true);
    // The client asked for base64 and the reply decoded into correct numbers.
    expect(h.rest.log.every((x) => x.base64)).toBe(true);
    expect(r.windows[0]!.counters.map((c) => [c.value, c.held])).toEqual([
      [1, 0],
      [10, 100],
    ]);
    expect(await h.direct.get(`${prefix}${key}:requests`)).toBe("1");
    expect(await h.direct.hget(`${prefix}${key}:tokens:held`, id)).toBe("100");
    expect(await h.direct.zscore(`${prefix}${key}:max_parallel_requests`, id)).not.toBeNull();
  });

  it("a key holding a malformed value answers STORE_DATA_CORRUPT and the store stays healthy", async () => {
    const prefix = `tgu:${uid()}:`;
    const s = store({ prefix });
    const key = `{k:${uid()}}`;
    await h.direct.set(`${prefix}${key}:window`, "not-a-number");
    expect((await rejection(s.admit(batch(key)))).code).toBe("STORE_DATA_CORRUPT");
    await h.direct.del(`${prefix}${key}:window`);
    await h.direct.hset(`${prefix}${key}:requests`, "x", "1"); // wrong type
    expect((await rejection(s.admit(batch(key)))).code).toBe("STORE_DATA_CORRUPT");
    expect(s.health).toBe("healthy");
  });

  it("a malformed reply from the REST API answers STORE_DATA_CORRUPT", async () => {
    const s = store();
    const key = `{k:${uid()}}`;
    await s.admit(batch(key));
    h.rest.tamper(() => ({ result: ["garbage"] }));
    expect((await rejection(s.admit(batch(key)))).code).toBe("STORE_DATA_CORRUPT");
    h.rest.tamper(() => ({ result: [1, 2] })); // truncated
    expect((await rejection(s.admit(batch(key)))).code).toBe("STORE_DATA_CORRUPT");
    h.rest.tamper(undefined);
    expect((await s.admit(batch(key))).admitted).toBe(true);
  });

  it("a wrong token is rejected: the store answers STORE_UNAVAILABLE and writes nothing", async () => {
    const prefix = `tgu:${uid()}:`;
    const s = store({ client: h.client({ token: "wrong-token" }), prefix });
    const key = `{k:${uid()}}`;
    const err = await rejection(s.admit(batch(key)));
    expect(err.code).toBe("STORE_UNAVAILABLE");
    expect(String((err.cause as Error | undefined)?.message)).toMatch(/WRONGPASS|auth/i);
    expect(await h.direct.keys(`${prefix}*`)).toEqual([]);
  });

  it("a store built from url and token works the same", async () => {
    const prefix = `tgu:${uid()}:`;
    const s = createUpstashStore({ url: h.rest.url, token: h.rest.token, prefix });
    stores.push(s);
    const key = `{k:${uid()}}`;
    h.rest.resetLog();
    expect((await s.admit(batch(key))).admitted).toBe(true);
    // This store's requests (a store of an earlier test may still finish a compensation meanwhile).
    expect(h.rest.log.filter((r) => r.keys?.some((k) => k.startsWith(prefix)))).toHaveLength(1);
    expect(await h.direct.get(`${prefix}${key}:requests`)).toBe("1");
  });

  it("uses the shared admit script (same SHA1 as @tollgate/redis-scripts)", async () => {
    const s = store();
    await s.admit(batch(`{k:${uid()}}`));
    expect(await h.direct.script("EXISTS", ADMIT_SCRIPT.sha1)).toEqual([1]);
  });
});

describe("faults: the REST server stops answering, then answers again", () => {
  const TIMEOUT = 150;

  function faultStore(policy: "closed" | "open" | "fallback") {
    let t = 1_000_000;
    const events: StoreHealthEvent[] = [];
    const s = store({ failurePolicy: policy, timeoutMs: TIMEOUT, retryIntervalMs: 1_000, now: () => t });
    s.onHealthChange((e) => events.push(e));
    return { s, events, advanceLocal: (ms: number) => (t += ms) };
  }

  it("closed: fails with STORE_UNAVAILABLE within the timeout, skips the backend while degraded, recovers", async () => {
    const { s, events, advanceLocal } = faultStore("closed");
    const key = `{k:${uid()}}`;
    await s.admit(batch(key));
    h.rest.pause();
    const r = await timed(() => s.admit(batch(key)));
    expect((r.error as TollgateError).code).toBe("STORE_UNAVAILABLE");
    expect(r.ms).toBeGreaterThanOrEqual(TIMEOUT - 5);
    expect(r.ms).toBeLessThan(TIMEOUT + 1_000);
    expect(s.health).toBe("degraded");
    // The hung HTTP request was aborted, not left waiting on the server.
    for (let i = 0; i < 100 && h.rest.pending > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(h.rest.pending).toBe(0);

    // Degraded and before the retry interval: answered at once, without any HTTP request.
    h.rest.resetLog();
    const fast = await timed(() => s.admit(batch(key)));
    expect((fast.error as TollgateError).code).toBe("STORE_UNAVAILABLE");
    expect(fast.ms).toBeLessThan(50);
    expect(h.rest.requests).toBe(0);

    h.rest.resume();
    advanceLocal(1_000);
    const back = await s.admit(batch(key));
    expect(back.admitted).toBe(true);
    expect(back.degraded).toBeUndefined();
    expect(s.health).toBe("healthy");
    expect(events.map((e) => e.state)).toEqual(["degraded", "healthy"]);
    // The admission lost while paused never reached Redis: 1 before + 1 after.
    expect(back.windows[0]!.counters[0]!.value).toBe(2);
  });

  it("open: admits without counting (degraded: open) within the timeout, then recovers", async () => {
    const { s, advanceLocal } = faultStore("open");
    const key = `{k:${uid()}}`;
    await s.admit(batch(key));
    h.rest.pause();
    const r = await timed(() => s.admit(batch(key)));
    expect(r.value?.admitted).toBe(true);
    expect(r.value?.degraded).toBe("open");
    expect(r.ms).toBeLessThan(TIMEOUT + 1_000);
    h.rest.resume();
    advanceLocal(1_000);
    const back = await s.admit(batch(key));
    expect(back.degraded).toBeUndefined();
    expect(back.windows[0]!.counters[0]!.value).toBe(2);
  });

  it("fallback: decides on the local store with the limits enforced, then recovers", async () => {
    const { s, advanceLocal } = faultStore("fallback");
    const key = `{k:${uid()}}`;
    const limited = (): AdmitBatch => ({
      windows: [
        {
          key,
          windowMs: 60_000,
          algorithm: "fixed",
          counters: [{ name: "requests", limit: 3, amount: 1, enforce: true }],
        },
      ],
      gauges: [],
    });
    expect((await s.admit(limited())).admitted).toBe(true);
    h.rest.pause();
    const first = await timed(() => s.admit(limited()));
    expect(first.ms).toBeLessThan(TIMEOUT + 1_000);
    expect(first.value?.degraded).toBe("fallback");
    const local = [first.value!, await s.admit(limited()), await s.admit(limited()), await s.admit(limited())];
    // The local store starts from what Upstash last counted (1 of 3): 2 more.
    expect(local.map((x) => x.admitted)).toEqual([true, true, false, false]);
    expect(local.every((x) => x.degraded === "fallback")).toBe(true);
    h.rest.resume();
    advanceLocal(1_000);
    const back = await s.admit(limited());
    expect(back.degraded).toBeUndefined();
    expect(back.admitted).toBe(true);
    expect(back.windows[0]!.counters[0]!.value).toBe(2); // Redis saw 1 before and this one
  });
});
