import type { AdjustBatch, AdjustResult, AdmitBatch, CounterStore, LeaseRef } from "@tollgate/core";
import { TollgateError } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { type ContractContext, type Fixture, gauge, held, inFlight, uid, values, win } from "../context.js";

const KEEP = 60_000;
const GAUGE = "max_parallel_requests";

/**
 * One request's admission under a ticket, and the adjustments that finish it, over several windows (each its own
 * hash tag, so a Redis Cluster spreads them over slots): window A counts requests and tokens and has the gauge,
 * window B counts tokens and holds spend, window C counts requests.
 */
function request(f: Fixture, id: string, ttlMs = 60_000) {
  const { W } = f;
  const A = `{a:${uid()}}`;
  const B = `{b:${uid()}}`;
  const C = `{c:${uid()}}`;
  const admit: AdmitBatch = {
    windows: [
      win(A, W, [
        ["requests", 100, 1],
        ["tokens", 100_000, 500],
      ]),
      {
        key: B,
        windowMs: W,
        algorithm: "fixed",
        counters: [
          { name: "tokens", limit: 100_000, amount: 500, enforce: true },
          { name: "spend", limit: 1_000, amount: 0, hold: 300, enforce: true },
        ],
      },
      win(C, W, [["requests", 100, 1]]),
    ],
    gauges: [gauge(A, 10)],
    lease: { id, ttlMs },
    ticket: true,
  };
  const release: LeaseRef = {
    id,
    gauges: [{ key: A, name: GAUGE }],
    holds: [{ key: B, name: "spend" }],
    windows: [A, B, C],
  };
  const adjust = (starts: number[], finish: "settle" | "release", deltas: number[][], keepMs = KEEP): AdjustBatch => ({
    windows: [
      {
        key: A,
        windowMs: W,
        algorithm: "fixed",
        expectStart: starts[0]!,
        counters: [
          { name: "requests", delta: deltas[0]![0]! },
          { name: "tokens", delta: deltas[0]![1]! },
        ],
      },
      {
        key: B,
        windowMs: W,
        algorithm: "fixed",
        expectStart: starts[1]!,
        counters: [
          { name: "tokens", delta: deltas[1]![0]! },
          { name: "spend", delta: deltas[1]![1]! },
        ],
      },
      {
        key: C,
        windowMs: W,
        algorithm: "fixed",
        expectStart: starts[2]!,
        counters: [{ name: "requests", delta: deltas[2]![0]! }],
      },
    ],
    release,
    ticket: { id, finish, keepMs },
  });
  /** Success: actual 120 tokens (380 back), spend 250 charged. */
  const settle = (starts: number[], keepMs = KEEP) => adjust(starts, "settle", [[0, -380], [-380, 250], [0]], keepMs);
  /** Never happened: the request and the 500 tokens back, nothing charged. */
  const undo = (starts: number[], keepMs = KEEP) => adjust(starts, "release", [[-1, -500], [-500, 0], [-1]], keepMs);
  /** Everything the request left in the store: [A requests, A tokens, B tokens, B spend, B held, C requests, in flight]. */
  const state = async (store: CounterStore) => [
    ...(await values(store, A, W, ["requests", "tokens"])),
    ...(await values(store, B, W, ["tokens", "spend"])),
    await held(store, B, W, "spend"),
    ...(await values(store, C, W)),
    await inFlight(store, A),
  ];
  return { A, B, C, admit, release, settle, undo, state };
}

const ADMITTED = [1, 500, 500, 0, 300, 1, 1];
const SETTLED = [1, 120, 120, 250, 0, 1, 0];
const UNDONE = [0, 0, 0, 0, 0, 0, 0];

function startsOf(r: { windows: Array<{ start: number }> }): number[] {
  return r.windows.map((w) => w.start);
}

function appliedOnce(results: AdjustResult[], first: "open" | "unknown" = "open"): void {
  const fresh = results.filter((r) => r.ticket !== "finished");
  expect(fresh).toHaveLength(1);
  expect(fresh[0]!.ticket).toBe(first);
  expect(fresh[0]!.applied.every(Boolean)).toBe(true);
  for (const r of results.filter((x) => x.ticket === "finished")) {
    expect(r.applied.some(Boolean)).toBe(false);
    expect(r.released).toBe(0);
  }
}

/**
 * Contract 2 tickets: settles and releases apply exactly once per ticket whatever the number of retries, late
 * admissions under a finished ticket are refused, and tickets live and expire with their lease and `keepMs`.
 */
export function ticketContract(ctx: ContractContext): void {
  describe("tickets (contract 2)", () => {
    it("a settle sent again and again applies once: the first finds the ticket open, the others finished", async () => {
      const f = await ctx.setup();
      const q = request(f, `t-${uid()}`);
      const a = await f.store.admit(q.admit);
      expect(a.admitted).toBe(true);
      expect(await q.state(f.store)).toEqual(ADMITTED);
      const results: AdjustResult[] = [];
      for (let i = 0; i < 5; i++) results.push(await f.store.adjust(q.settle(startsOf(a))));
      appliedOnce(results);
      expect(results[0]!.released).toBe(2); // the gauge entry and the hold
      expect(await q.state(f.store)).toEqual(SETTLED);
    });

    it(`${ctx.concurrency} concurrent copies of one settle apply once`, async () => {
      const f = await ctx.setup();
      const q = request(f, `t-${uid()}`);
      const a = await f.store.admit(q.admit);
      const batch = q.settle(startsOf(a));
      const results = await Promise.all(Array.from({ length: ctx.concurrency }, () => f.store.adjust(batch)));
      appliedOnce(results);
      expect(await q.state(f.store)).toEqual(SETTLED);
    });

    it("concurrent copies of one release apply once; another request's slot and hold stay", async () => {
      const f = await ctx.setup();
      const q = request(f, `t-${uid()}`);
      const other = request(f, `t-${uid()}`);
      // the other request shares window A and its gauge
      const a = await f.store.admit(q.admit);
      const b = await f.store.admit({ ...other.admit, windows: [q.admit.windows[0]!], gauges: [gauge(q.A, 10)] });
      expect(b.admitted).toBe(true);
      const batch = q.undo(startsOf(a));
      const results = await Promise.all(Array.from({ length: 50 }, () => f.store.adjust(batch)));
      appliedOnce(results);
      expect(await values(f.store, q.A, f.W, ["requests", "tokens"])).toEqual([1, 500]); // the other request's
      expect(await inFlight(f.store, q.A)).toBe(1);
      expect(await values(f.store, q.B, f.W, ["tokens", "spend"])).toEqual([0, 0]);
      expect(await held(f.store, q.B, f.W, "spend")).toBe(0);
      expect(await values(f.store, q.C, f.W)).toEqual([0]);
    });

    it("a settle and a release racing for one ticket: exactly one of them applies", async () => {
      const f = await ctx.setup();
      const q = request(f, `t-${uid()}`);
      const a = await f.store.admit(q.admit);
      const batches = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? q.settle(startsOf(a)) : q.undo(startsOf(a))));
      const results = await Promise.all(batches.map((b) => f.store.adjust(b)));
      appliedOnce(results);
      const winner = results.findIndex((r) => r.ticket !== "finished");
      expect(await q.state(f.store)).toEqual(winner % 2 === 0 ? SETTLED : UNDONE);
    });

    it("a release of a ticket the store never recorded applies nothing, and refuses its late admission", async () => {
      const f = await ctx.setup();
      const id = `t-${uid()}`;
      const q = request(f, id);
      const now = (await f.store.read({ windows: [], gauges: [] })).now;
      const rel = await f.store.adjust(q.undo([now, now, now]));
      expect(rel.ticket).toBe("unknown");
      expect(rel.applied).toEqual([false, false, false]);
      expect(rel.released).toBe(0);
      // the admission arrives after its compensation (a timed-out call applied late): refused, nothing changes
      const late = await f.store.admit(q.admit);
      expect(late.admitted).toBe(false);
      expect(late.denied).toEqual({ type: "ticket" });
      expect(await q.state(f.store)).toEqual(UNDONE);
    });

    it("a settle of a ticket the store does not know applies (once)", async () => {
      const f = await ctx.setup();
      const { store, key, W } = f;
      const id = `t-${uid()}`;
      const batch: AdjustBatch = {
        windows: [{ key, windowMs: W, algorithm: "fixed", counters: [{ name: "tokens", delta: 70 }] }],
        release: { id, gauges: [], holds: [], windows: [key] },
        ticket: { id, finish: "settle", keepMs: KEEP },
      };
      const first = await store.adjust(batch);
      expect(first.ticket).toBe("unknown");
      expect(first.applied).toEqual([true]);
      const again = await store.adjust(batch);
      expect(again.ticket).toBe("finished");
      expect(again.applied).toEqual([false]);
      expect(await values(store, key, W, ["tokens"])).toEqual([70]);
    });

    it("a late admission under a finished ticket is refused and changes nothing", async () => {
      const f = await ctx.setup();
      const q = request(f, `t-${uid()}`);
      const a = await f.store.admit(q.admit);
      expect((await f.store.adjust(q.settle(startsOf(a)))).ticket).toBe("open");
      const late = await f.store.admit(q.admit);
      expect(late.admitted).toBe(false);
      expect(late.denied).toEqual({ type: "ticket" });
      expect(await q.state(f.store)).toEqual(SETTLED);
      // another id is admitted as usual
      expect((await f.store.admit({ ...q.admit, lease: { id: `t-${uid()}`, ttlMs: 60_000 } })).admitted).toBe(true);
    });

    it("an admission denied by a limit records no ticket: a release of its id applies nothing", async () => {
      const f = await ctx.setup();
      const { store, key, W } = f;
      const id = `t-${uid()}`;
      await store.admit({ windows: [win(key, W, [["requests", 1, 1]])], gauges: [] });
      const denied = await store.admit({
        windows: [win(key, W, [["requests", 1, 1]])],
        gauges: [],
        lease: { id, ttlMs: 60_000 },
        ticket: true,
      });
      expect(denied.admitted).toBe(false);
      expect(denied.denied).toEqual({ type: "counter", window: 0, counter: 0 });
      const rel = await store.adjust({
        windows: [{ key, windowMs: W, algorithm: "fixed", counters: [{ name: "requests", delta: -1 }] }],
        release: { id, gauges: [], holds: [], windows: [key] },
        ticket: { id, finish: "release", keepMs: KEEP },
      });
      expect(rel.ticket).toBe("unknown");
      expect(await values(store, key, W)).toEqual([1]);
    });

    it("renew extends an open ticket with its lease; after the lease a release applies nothing", async () => {
      const f = await ctx.setup();
      const ttl = f.injected ? 30_000 : 400;
      const renewed = request(f, `t-${uid()}`, ttl);
      const lapsed = request(f, `t-${uid()}`, ttl);
      const a = await f.store.admit(renewed.admit);
      const b = await f.store.admit(lapsed.admit);
      await f.tick(ttl * 0.6);
      // the gauge entry, the hold and the ticket
      expect(await f.store.renew(renewed.release, ttl)).toBe(3);
      await f.tick(ttl * 0.6);
      const open = await f.store.adjust(renewed.undo(startsOf(a)));
      expect(open.ticket).toBe("open");
      expect(open.applied).toEqual([true, true, true]);
      expect(await renewed.state(f.store)).toEqual(UNDONE);
      const gone = await f.store.adjust(lapsed.undo(startsOf(b)));
      expect(gone.ticket).toBe("unknown");
      expect(gone.applied).toEqual([false, false, false]);
      expect(gone.released).toBe(0);
      // the request counts stay (the store cannot know the admission applied); the lapsed lease holds nothing
      expect(await lapsed.state(f.store)).toEqual([1, 500, 500, 0, 0, 1, 0]);
      expect(await f.store.renew(lapsed.release, ttl)).toBe(0);
    });

    it("a ticket without gauges or holds: renew counts it while open, not once finished", async () => {
      const { store, key, W } = await ctx.setup();
      const id = `t-${uid()}`;
      const a = await store.admit({
        windows: [win(key, W, [["requests", 10, 1]])],
        gauges: [],
        lease: { id, ttlMs: 60_000 },
        ticket: true,
      });
      const ref: LeaseRef = { id, gauges: [], holds: [], windows: [key] };
      expect(await store.renew(ref, 60_000)).toBe(1);
      const settle: AdjustBatch = {
        windows: [],
        release: ref,
        ticket: { id, finish: "settle", keepMs: KEEP },
        readBack: false,
      };
      const s = await store.adjust(settle);
      expect(s.ticket).toBe("open");
      expect(s.released).toBe(0);
      expect(s.now).toBeGreaterThanOrEqual(a.now);
      expect(await store.renew(ref, 60_000)).toBe(0);
      expect((await store.adjust(settle)).ticket).toBe("finished");
    });

    it("the finished mark is kept for keepMs, then forgotten", async () => {
      const f = await ctx.setup();
      const keep = f.injected ? 10_000 : 300;
      const q = request(f, `t-${uid()}`);
      const a = await f.store.admit(q.admit);
      expect((await f.store.adjust(q.settle(startsOf(a), keep))).ticket).toBe("open");
      if (f.injected) {
        await f.tick(keep - 1);
        expect((await f.store.adjust(q.settle(startsOf(a), keep))).ticket).toBe("finished");
        await f.tick(1); // the retry above marked it again: keepMs from then
        expect((await f.store.adjust(q.settle(startsOf(a), keep))).ticket).toBe("finished");
        await f.tick(keep);
      } else {
        expect((await f.store.adjust(q.settle(startsOf(a), keep))).ticket).toBe("finished");
        await f.tick(keep + 100);
      }
      // forgotten: the ticket is unknown again (a release applies nothing; a settle would apply once more)
      const later = await f.store.adjust(q.undo(startsOf(a), keep));
      expect(later.ticket).toBe("unknown");
      expect(later.applied).toEqual([false, false, false]);
      expect(await q.state(f.store)).toEqual(SETTLED);
      // and the late admission is refused again (the release marked it)
      expect((await f.store.admit(q.admit)).denied).toEqual({ type: "ticket" });
    });

    it("readBack false: the ticket decides the same, and the answer says what it found", async () => {
      const f = await ctx.setup();
      const q = request(f, `t-${uid()}`);
      const a = await f.store.admit(q.admit);
      const batch = { ...q.settle(startsOf(a)), readBack: false };
      const [one, two] = [await f.store.adjust(batch), await f.store.adjust(batch)];
      expect([one.ticket, two.ticket]).toEqual(["open", "finished"]);
      expect(one.applied).toEqual([true, true, true]);
      expect(two.applied).toEqual([false, false, false]);
      expect(await q.state(f.store)).toEqual(SETTLED);
    });

    it(`exact per window under ${ctx.concurrency} concurrent requests, each finished by several retries`, async () => {
      const f = await ctx.setup();
      const { store, W } = f;
      const shared = `{shared:${uid()}}`;
      const team = `{team:${uid()}}`;
      const n = Math.min(40, Math.floor(ctx.concurrency / 5));
      const ids = Array.from({ length: n }, (_, i) => `t${i}-${uid()}`);
      const admitOne = (id: string): AdmitBatch => ({
        windows: [
          win(shared, W, [
            ["requests", 1_000, 1],
            ["tokens", 1_000_000, 100],
          ]),
          {
            key: team,
            windowMs: W,
            algorithm: "fixed",
            counters: [{ name: "spend", limit: 1_000_000, amount: 0, hold: 50, enforce: true }],
          },
        ],
        gauges: [gauge(shared, 1_000)],
        lease: { id, ttlMs: 60_000 },
        ticket: true,
      });
      const admitted = await Promise.all(ids.map((id) => store.admit(admitOne(id))));
      expect(admitted.every((r) => r.admitted)).toBe(true);
      // even ids succeed (settle: 60 tokens actual, spend 20), odd ids never happened (release)
      const finish = (i: number): AdjustBatch => {
        const id = ids[i]!;
        const a = admitted[i]!;
        const ok = i % 2 === 0;
        return {
          windows: [
            {
              key: shared,
              windowMs: W,
              algorithm: "fixed",
              expectStart: a.windows[0]!.start,
              counters: [
                { name: "requests", delta: ok ? 0 : -1 },
                { name: "tokens", delta: ok ? -40 : -100 },
              ],
            },
            {
              key: team,
              windowMs: W,
              algorithm: "fixed",
              expectStart: a.windows[1]!.start,
              counters: [{ name: "spend", delta: ok ? 20 : 0 }],
            },
          ],
          release: {
            id,
            gauges: [{ key: shared, name: GAUGE }],
            holds: [{ key: team, name: "spend" }],
            windows: [shared, team],
          },
          ticket: { id, finish: ok ? "settle" : "release", keepMs: KEEP },
        };
      };
      const sends = ids.flatMap((_, i) => Array.from({ length: 5 }, () => i));
      const results = await Promise.all(sends.map((i) => store.adjust(finish(i))));
      for (let i = 0; i < n; i++) appliedOnce(results.filter((_, k) => sends[k] === i));
      const half = Math.ceil(n / 2);
      expect(await values(store, shared, W, ["requests", "tokens"])).toEqual([half, half * 60]);
      expect(await values(store, team, W, ["spend"])).toEqual([half * 20]);
      expect(await held(store, team, W, "spend")).toBe(0);
      expect(await inFlight(store, shared)).toBe(0);
    });

    describe("bad ticket fields get INVALID_ARGUMENT and change nothing", () => {
      const adjustCases: Array<[string, (id: string) => unknown]> = [
        ["an empty ticket id", () => ({ id: "", finish: "settle", keepMs: KEEP })],
        ["a ticket finish other than settle or release", (id) => ({ id, finish: "maybe", keepMs: KEEP })],
        ["a zero keepMs", (id) => ({ id, finish: "settle", keepMs: 0 })],
        ["a negative keepMs", (id) => ({ id, finish: "settle", keepMs: -5 })],
        ["a fractional keepMs", (id) => ({ id, finish: "release", keepMs: 1.5 })],
        ["a ticket that is not an object", () => "settle"],
      ];
      for (const [what, ticket] of adjustCases) {
        it(`adjust: ${what}`, async () => {
          const { store, key, W } = await ctx.setup();
          await store.admit({ windows: [win(key, W, [["requests", 10, 3]])], gauges: [] });
          const id = `t-${uid()}`;
          const error = await store
            .adjust({
              windows: [{ key, windowMs: W, algorithm: "fixed", counters: [{ name: "requests", delta: -1 }] }],
              release: { id, gauges: [], holds: [], windows: [key] },
              ticket: ticket(id) as AdjustBatch["ticket"],
            })
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(TollgateError);
          expect((error as TollgateError).code).toBe("INVALID_ARGUMENT");
          expect(await values(store, key, W)).toEqual([3]);
        });
      }

      it("adjust: a ticket without its release, or with the release of another id", async () => {
        const { store, key, W } = await ctx.setup();
        await store.admit({ windows: [win(key, W, [["requests", 10, 3]])], gauges: [] });
        const windows = [
          { key, windowMs: W, algorithm: "fixed" as const, counters: [{ name: "requests", delta: -1 }] },
        ];
        for (const release of [undefined, { id: "other", gauges: [], holds: [] }]) {
          const batch: AdjustBatch = { windows, ticket: { id: "t", finish: "settle", keepMs: KEEP } };
          if (release) batch.release = release;
          await expect(store.adjust(batch)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
        }
        expect(await values(store, key, W)).toEqual([3]);
      });

      it("admit: a ticket that is not a boolean, or a ticket without a lease", async () => {
        const { store, key, W } = await ctx.setup();
        const w = [win(key, W, [["requests", 10, 1]])];
        const bad: AdmitBatch[] = [
          { windows: w, gauges: [], lease: { id: "x", ttlMs: 1000 }, ticket: "yes" as unknown as boolean },
          { windows: w, gauges: [], ticket: true },
        ];
        for (const batch of bad) {
          await expect(store.admit(batch)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
        }
        expect(await values(store, key, W)).toEqual([0]);
      });

      it("renew and release: lease windows that are not an array of keys", async () => {
        const { store, key } = await ctx.setup();
        expect(
          (await store.admit({ windows: [], gauges: [gauge(key, 5)], lease: { id: "L", ttlMs: 60_000 } })).admitted,
        ).toBe(true);
        const bad = { id: "L", gauges: [{ key, name: GAUGE }], holds: [], windows: "nope" } as unknown as LeaseRef;
        await expect(store.renew(bad, 1000)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
        await expect(store.adjust({ windows: [], release: bad })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
        const empty = { ...bad, windows: [""] };
        await expect(store.adjust({ windows: [], release: empty })).rejects.toMatchObject({ code: "INVALID_SCOPE" });
        expect(await inFlight(store, key)).toBe(1);
      });
    });
  });
}
