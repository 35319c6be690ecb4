import type { AdjustBatch, AdmitBatch } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import {
  baseKey,
  decodeAdjust,
  decodeAdmit,
  decodeRead,
  encodeAdjust,
  encodeAdmit,
  encodeRead,
  encodeRenew,
  hasHashTag,
} from "../src/index.js";

const batch: AdmitBatch = {
  windows: [
    {
      key: "{api_key:abc}",
      windowMs: 60_000,
      algorithm: "sliding",
      counters: [
        { name: "requests", limit: 10, amount: 1, enforce: true },
        { name: "tokens", limit: 1000, amount: 50, hold: 20, enforce: false },
      ],
    },
  ],
  gauges: [{ key: "{api_key:abc}", name: "max_parallel_requests", limit: 3, enforce: true }],
  lease: { id: "L", ttlMs: 30_000 },
};

describe("keys", () => {
  it("keeps LiteLLM's layout with the prefix outside the braces, and wraps bases without a hash tag", () => {
    expect(baseKey("tollgate:", "{api_key:abc}")).toBe("tollgate:{api_key:abc}");
    expect(baseKey("p:", "api_key:abc")).toBe("p:{api_key:abc}");
    expect(baseKey("p:", "x{}y")).toBe("p:{x{}y}");
    expect(hasHashTag("a{b}c")).toBe(true);
    expect(hasHashTag("a{}c")).toBe(false);
  });
});

describe("codec", () => {
  it("encodes an admission: string keys first (one MGET), then hold keys, then gauges", () => {
    const call = encodeAdmit(batch, { prefix: "tg:" });
    expect(call.script.name).toBe("admit");
    expect(call.keys).toEqual([
      "tg:{api_key:abc}:window",
      "tg:{api_key:abc}:requests",
      "tg:{api_key:abc}:requests:prev",
      "tg:{api_key:abc}:tokens",
      "tg:{api_key:abc}:tokens:prev",
      "tg:{api_key:abc}:requests:holds",
      "tg:{api_key:abc}:requests:held",
      "tg:{api_key:abc}:tokens:holds",
      "tg:{api_key:abc}:tokens:held",
      "tg:{api_key:abc}:max_parallel_requests",
    ]);
    // Numbers in base 36. clock, lease, ttl, ticket ttl, 65536 × windows + gauges; per window 1024 × windowMs +
    // 4 × counters + flags (sliding 1 + holds 2); per counter limit + 1 (0: not enforced), amount, hold; per gauge
    // limit + 1.
    const b = (n: number) => n.toString(36);
    expect(call.args).toEqual([
      ...["", "L", b(30_000), "0", b(65536 + 1)],
      b(60_000 * 1024 + 4 * 2 + 3),
      ...[b(11), b(1), b(0)],
      ...["0", b(50), b(20)],
      b(4),
    ]);
    expect(encodeAdmit(batch, { prefix: "tg:", testNowMs: 1234 }).args[0]).toBe((1234).toString(36));
  });

  it("a window declared noHolds takes no hold keys and no hold arguments; a ticket key comes first", () => {
    const call = encodeAdmit(
      {
        windows: [
          {
            key: "{k}",
            windowMs: 1000,
            algorithm: "fixed",
            noHolds: true,
            counters: [
              { name: "requests", limit: 5, amount: 1, enforce: true },
              { name: "tokens", limit: 50, amount: 7, enforce: true },
            ],
          },
        ],
        gauges: [],
        lease: { id: "L", ttlMs: 9 },
        ticket: true,
      },
      { prefix: "" },
      { key: "ticket:L", ttlMs: 9 },
    );
    expect(call.keys).toEqual(["ticket:L", "{k}:window", "{k}:requests", "{k}:tokens"]);
    const b = (n: number) => n.toString(36);
    expect(call.args).toEqual([
      ...["", "L", b(9), b(9), b(65536)],
      b(1000 * 1024 + 8),
      ...[b(6), b(1)],
      ...[b(51), b(7)],
    ]);
  });

  it("encodes adjust, renew and read with release keys after the window keys", () => {
    const adj = encodeAdjust(
      {
        windows: [
          { key: "{a}", windowMs: 1000, algorithm: "fixed", expectStart: 5, counters: [{ name: "t", delta: -2 }] },
        ],
        release: { id: "L", gauges: [{ key: "{a}", name: "g" }], holds: [{ key: "{b}", name: "h" }] },
      },
      { prefix: "" },
      { key: "ticket:L", mode: "settle", keepMs: 60_000 },
    );
    // A fixed window has no `:prev` key (the sliding admission above has one per counter).
    expect(adj.keys).toEqual([
      "ticket:L",
      "{a}:window",
      "{a}:t",
      "{a}:t:holds",
      "{a}:t:held",
      "{a}:g",
      "{b}:h:holds",
      "{b}:h:held",
    ]);
    // clock, lease, windows + 4096 × gauges + 4096² × holds + 4096³ × (read-back + 2 × ticket mode), keep; window:
    // 1024 × ms + 16 × counters + 4 × guard + flags, expected start, zigzag deltas.
    const b = (n: number) => n.toString(36);
    expect(adj.args).toEqual([
      ...["", "L", b(1 + 4096 + 4096 ** 2 + 4096 ** 3 * (1 + 2)), b(60_000)],
      ...[b(1000 * 1024 + 16 + 4 + 2), b(5), b(3)],
    ]);
    // Without read-back the adjusted counters take no hold keys (the released ones still do), and a guarded
    // window's counters with a delta of 0 are left out.
    const leanBatch: AdjustBatch = {
      readBack: false,
      windows: [
        {
          key: "{a}",
          windowMs: 1000,
          algorithm: "fixed",
          expectStart: 5,
          counters: [
            { name: "r", delta: 0 },
            { name: "t", delta: -2 },
          ],
        },
        { key: "{s}", windowMs: 1000, algorithm: "sliding", counters: [{ name: "t", delta: 0 }] },
      ],
      release: { id: "L", gauges: [], holds: [{ key: "{b}", name: "h" }] },
    };
    const lean = encodeAdjust(leanBatch, { prefix: "" });
    expect(lean.keys).toEqual([
      "{a}:window",
      "{a}:t",
      "{s}:window",
      "{s}:t",
      "{s}:t:prev",
      "{b}:h:holds",
      "{b}:h:held",
    ]);
    expect(lean.args.slice(0, 4)).toEqual(["", "L", b(2 + 4096 ** 2), "0"]);
    // The short reply: now, released, ticket state, applied per window.
    expect(decodeAdjust(leanBatch, [7, 1, 0, 1, 0])).toEqual({
      now: 7,
      released: 1,
      applied: [true, false],
      windows: [],
    });
    expect(decodeAdjust(leanBatch, [7, 0, 3, 0, 0]).ticket).toBe("finished");
    const ren = encodeRenew({ id: "L", gauges: [{ key: "{a}", name: "g" }], holds: [] }, 500, { prefix: "" }, "t:L");
    expect(ren.keys).toEqual(["{a}:g", "t:L"]);
    expect(ren.args).toEqual(["", "L", b(500), "1", "0", "1"]);
    const rd = encodeRead({ windows: [], gauges: [{ key: "{a}", name: "g" }] }, { prefix: "" });
    expect(rd.keys).toEqual(["{a}:g"]);
  });

  it("decodes replies, and rejects a reply of the wrong shape as STORE_DATA_CORRUPT", () => {
    const reply = [0, 100, 2, 0, 0, 90, 3, 1, 0, 400, 2, 20, 3, 150];
    const r = decodeAdmit(batch, reply);
    expect(r).toEqual({
      admitted: false,
      now: 100,
      denied: { type: "gauge", gauge: 0 },
      windows: [
        {
          start: 90,
          counters: [
            { value: 3, previous: 1, held: 0 },
            { value: 400, previous: 2, held: 20 },
          ],
        },
      ],
      gauges: [{ inFlight: 3, earliestExpiry: 150 }],
    });
    expect(decodeAdmit(batch, [0, 100, 3, 0, 0, 90, 3, 1, 0, 400, 2, 20, 3, 150]).denied).toEqual({ type: "ticket" });
    expect(decodeRead({ windows: [], gauges: [{ key: "{a}", name: "g" }] }, [7, 0, -1]).gauges[0]).toEqual({
      inFlight: 0,
      earliestExpiry: null,
    });
    for (const bad of [null, "x", reply.slice(1), [...reply, 1], reply.map((n, i) => (i === 3 ? "abc" : n))]) {
      expect(() => decodeAdmit(batch, bad)).toThrowError(expect.objectContaining({ code: "STORE_DATA_CORRUPT" }));
    }
  });
});
