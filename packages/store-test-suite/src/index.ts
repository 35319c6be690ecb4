import {
  type AdjustBatch,
  type AdmitBatch,
  type AdmitResult,
  type CounterStore,
  createLimiter,
  type Descriptor,
  type GaugeOp,
  TollgateError,
  type WindowAlgorithm,
  type WindowOp,
} from "@tollgate/core";
import { afterEach, describe, expect, it } from "vitest";

/** What a store factory returns for one test. */
export interface StoreUnderTest {
  store: CounterStore;
  /**
   * Moves the store's clock forward by `ms`. Offer it when you can (an injected clock, or a clock offset added
   * to server time): the suite then checks exact expiry and sliding-window arithmetic without sleeping. Without
   * it, the time-dependent cases run on short real windows and check the store's answers for consistency.
   */
  advance?: (ms: number) => void | Promise<void>;
  /** Called after the test, after `store.close()`. */
  cleanup?: () => void | Promise<void>;
}

/** Options of {@link runStoreContract}. */
export interface StoreContractOptions {
  /** Name shown in the test titles. */
  name: string;
  /**
   * Creates a store for one test. `prefix` is fresh and unique per call, so suites can share one real server
   * without flushing it; the store must put it in front of every key it writes.
   */
  create: (context: { prefix: string }) => StoreUnderTest | Promise<StoreUnderTest>;
  /** Number of concurrent admissions in the concurrency cases. @default 200 */
  concurrency?: number;
}

const uid = () => Math.random().toString(36).slice(2, 10);

/**
 * Registers the whole CounterStore contract suite (describe/it blocks of vitest) for a store factory.
 * Call it at the top level of a test file.
 */
export function runStoreContract(options: StoreContractOptions): void {
  const concurrency = options.concurrency ?? 200;
  const open: StoreUnderTest[] = [];

  async function setup() {
    const sut = await options.create({ prefix: `tgtest:${uid()}:` });
    open.push(sut);
    const injected = sut.advance !== undefined;
    const W = injected ? 60_000 : 1_000;
    const tick = async (ms: number) => {
      if (sut.advance) await sut.advance(ms);
      else await new Promise((r) => setTimeout(r, ms));
    };
    return { ...sut, injected, W, tick, key: `{test:${uid()}}` };
  }

  afterEach(async () => {
    for (const sut of open.splice(0)) {
      await sut.store.close();
      await sut.cleanup?.();
    }
  });

  const win = (
    key: string,
    windowMs: number,
    counters: Array<[name: string, limit: number, amount: number, enforce?: boolean]>,
    algorithm: WindowAlgorithm = "fixed",
  ): WindowOp => ({
    key,
    windowMs,
    algorithm,
    counters: counters.map(([name, limit, amount, enforce = true]) => ({ name, limit, amount, enforce })),
  });
  const gauge = (key: string, limit: number, enforce = true): GaugeOp => ({
    key,
    name: "max_parallel_requests",
    limit,
    enforce,
  });
  const values = async (
    store: CounterStore,
    key: string,
    W: number,
    names = ["requests"],
    algorithm: WindowAlgorithm = "fixed",
  ) =>
    (
      await store.read({ windows: [{ key, windowMs: W, algorithm, counters: names }], gauges: [] })
    ).windows[0]!.counters.map((c) => c.value);
  const inFlight = async (store: CounterStore, key: string) =>
    (await store.read({ windows: [], gauges: [{ key, name: "max_parallel_requests" }] })).gauges[0]!.inFlight;

  describe(`CounterStore contract: ${options.name}`, () => {
    describe("admission", () => {
      it("admits up to the limit, then denies naming the counter, its value and limit", async () => {
        const { store, key, W } = await setup();
        const batch = { windows: [win(key, W, [["requests", 3, 1]])], gauges: [] };
        for (let i = 1; i <= 3; i++) {
          const r = await store.admit(batch);
          expect(r.admitted).toBe(true);
          expect(r.windows[0]!.counters[0]!.value).toBe(i);
        }
        const denied = await store.admit(batch);
        expect(denied.admitted).toBe(false);
        expect(denied.denied).toEqual({ type: "counter", window: 0, counter: 0 });
        expect(denied.windows[0]!.counters[0]!.value).toBe(3);
        expect(await values(store, key, W)).toEqual([3]);
      });

      it("charges amounts and checks current + amount <= limit", async () => {
        const { store, key, W } = await setup();
        const ok = await store.admit({ windows: [win(key, W, [["tokens", 100, 60]])], gauges: [] });
        expect(ok.admitted).toBe(true);
        const over = await store.admit({ windows: [win(key, W, [["tokens", 100, 41]])], gauges: [] });
        expect(over.admitted).toBe(false);
        const exact = await store.admit({ windows: [win(key, W, [["tokens", 100, 40]])], gauges: [] });
        expect(exact.admitted).toBe(true);
        expect(exact.windows[0]!.counters[0]!.value).toBe(100);
      });

      it("denies a zero amount once the quota is exhausted, admits it below", async () => {
        const { store, key, W } = await setup();
        const zero = { windows: [win(key, W, [["tokens", 10, 0]])], gauges: [] };
        expect((await store.admit(zero)).admitted).toBe(true);
        await store.admit({ windows: [win(key, W, [["tokens", 10, 10]])], gauges: [] });
        expect((await store.admit(zero)).admitted).toBe(false);
      });

      it(`admits exactly 50 of ${concurrency} concurrent admissions against a limit of 50`, async () => {
        const { store, key, W } = await setup();
        const batch = {
          windows: [
            win(key, W, [
              ["requests", 50, 1],
              ["tokens", 1_000_000, 7],
            ]),
          ],
          gauges: [],
        };
        const results = await Promise.all(Array.from({ length: concurrency }, () => store.admit(batch)));
        expect(results.filter((r) => r.admitted)).toHaveLength(50);
        expect(await values(store, key, W, ["requests", "tokens"])).toEqual([50, 350]);
      });

      it("is all-or-nothing across descriptors: one over-limit window leaves every other counter untouched", async () => {
        const { store, W } = await setup();
        const [a, b, c] = [`{a:${uid()}}`, `{b:${uid()}}`, `{c:${uid()}}`];
        await store.admit({ windows: [win(b, W, [["requests", 1, 1]])], gauges: [] });
        const r = await store.admit({
          windows: [
            win(a, W, [
              ["requests", 10, 1],
              ["tokens", 100, 5],
            ]),
            win(b, W, [["requests", 1, 1]]),
            win(c, W, [["requests", 10, 1]]),
          ],
          gauges: [gauge(a, 5)],
          lease: { id: uid(), ttlMs: 60_000 },
        });
        expect(r.admitted).toBe(false);
        expect(r.denied).toEqual({ type: "counter", window: 1, counter: 0 });
        expect(await values(store, a, W, ["requests", "tokens"])).toEqual([0, 0]);
        expect(await values(store, b, W)).toEqual([1]);
        expect(await values(store, c, W)).toEqual([0]);
        expect(await inFlight(store, a)).toBe(0);
      });

      it("a gauge denial consumes no request or token", async () => {
        const { store, key, W } = await setup();
        const batch = (id: string): AdmitBatch => ({
          windows: [
            win(key, W, [
              ["requests", 100, 1],
              ["tokens", 1000, 10],
            ]),
          ],
          gauges: [gauge(key, 1)],
          lease: { id, ttlMs: 60_000 },
        });
        expect((await store.admit(batch("first"))).admitted).toBe(true);
        const r = await store.admit(batch("second"));
        expect(r.admitted).toBe(false);
        expect(r.denied).toEqual({ type: "gauge", gauge: 0 });
        expect(r.gauges[0]!.inFlight).toBe(1);
        expect(await values(store, key, W, ["requests", "tokens"])).toEqual([1, 10]);
      });

      it("shadow counters (enforce: false) are counted past the limit and never deny", async () => {
        const { store, key, W } = await setup();
        const batch = { windows: [win(key, W, [["requests", 2, 1, false]])], gauges: [] };
        for (let i = 0; i < 4; i++) expect((await store.admit(batch)).admitted).toBe(true);
        expect(await values(store, key, W)).toEqual([4]);
      });

      it("read changes nothing", async () => {
        const { store, key, W } = await setup();
        await store.admit({ windows: [win(key, W, [["requests", 5, 2]])], gauges: [] });
        await values(store, key, W);
        expect(await values(store, key, W)).toEqual([2]);
        const fresh = await store.read({
          windows: [{ key: `{none:${uid()}}`, windowMs: W, algorithm: "fixed", counters: ["requests"] }],
          gauges: [],
        });
        expect(fresh.windows[0]!.counters[0]).toEqual({ value: 0, previous: 0, held: 0 });
      });
    });

    describe("windows", () => {
      it("fixed window: anchored at first use, rolls every counter together after windowMs", async () => {
        const { store, key, W, tick } = await setup();
        const batch = {
          windows: [
            win(key, W, [
              ["requests", 2, 1],
              ["tokens", 100, 50],
            ]),
          ],
          gauges: [],
        };
        const first = await store.admit(batch);
        expect(first.windows[0]!.start).toBe(first.now);
        await store.admit(batch);
        expect((await store.admit(batch)).admitted).toBe(false);
        await tick(W + 5);
        const after = await store.admit(batch);
        expect(after.admitted).toBe(true);
        expect(after.windows[0]!.start).toBe(after.now);
        expect(after.windows[0]!.counters.map((c) => c.value)).toEqual([1, 50]);
      });

      it("fixed window: still closed one moment before it ends", async () => {
        const { store, key, W, tick, injected } = await setup();
        const batch = { windows: [win(key, W, [["requests", 1, 1]])], gauges: [] };
        const first = await store.admit(batch);
        await tick(injected ? W - 1 : Math.floor(W / 2));
        const r = await store.admit(batch);
        expect(r.admitted).toBe(false);
        expect(r.windows[0]!.start).toBe(first.windows[0]!.start);
      });

      it("sliding window: the previous window counts by its remaining overlap", async () => {
        const { store, key, W, tick, injected } = await setup();
        const batch = { windows: [win(key, W, [["requests", 10, 1]], "sliding")], gauges: [] };
        const first = await store.admit(batch);
        const start = first.windows[0]!.start;
        for (let i = 1; i < 10; i++) await store.admit(batch);
        expect((await store.admit(batch)).admitted).toBe(false);
        await tick(W + W / 2);
        let admitted = 0;
        let last: AdmitResult | undefined;
        for (let i = 0; i < 12; i++) {
          last = await store.admit(batch);
          const s = last.windows[0]!;
          expect(s.start).toBe(start + W);
          expect(s.counters[0]!.previous).toBe(10);
          if (!last.admitted) break;
          admitted++;
        }
        expect(last?.admitted).toBe(false);
        const s = last!.windows[0]!;
        const weighted = (10 * (W - (last!.now - s.start))) / W;
        expect(weighted + s.counters[0]!.value + 1).toBeGreaterThan(10); // the denial is consistent with the formula
        if (injected)
          expect(admitted).toBe(5); // 10 × 0.5 = 5 still count, 5 fit
        else expect(admitted).toBeGreaterThanOrEqual(5);
      });

      it("sliding window: two windows later nothing of the past counts", async () => {
        const { store, key, W, tick } = await setup();
        const batch = { windows: [win(key, W, [["requests", 3, 1]], "sliding")], gauges: [] };
        for (let i = 0; i < 3; i++) await store.admit(batch);
        await tick(2 * W + 5);
        const r = await store.admit(batch);
        expect(r.admitted).toBe(true);
        expect(r.windows[0]!.counters[0]).toMatchObject({ value: 1, previous: 0 });
        expect(r.windows[0]!.start).toBe(r.now);
      });
    });

    describe("adjustments", () => {
      it("window-guarded delta applies in the window it was charged in, never below zero", async () => {
        const { store, key, W } = await setup();
        const r = await store.admit({
          windows: [
            win(key, W, [
              ["requests", 10, 1],
              ["tokens", 1000, 100],
            ]),
          ],
          gauges: [],
        });
        const start = r.windows[0]!.start;
        const spec = { key, windowMs: W, algorithm: "fixed" as const, expectStart: start };
        const up = await store.adjust({ windows: [{ ...spec, counters: [{ name: "tokens", delta: 150 }] }] });
        expect(up.applied).toEqual([true]);
        expect(up.windows[0]!.counters[0]!.value).toBe(250);
        const down = await store.adjust({ windows: [{ ...spec, counters: [{ name: "tokens", delta: -1000 }] }] });
        expect(down.windows[0]!.counters[0]!.value).toBe(0);
        expect(await values(store, key, W, ["requests", "tokens"])).toEqual([1, 0]);
      });

      it("a refund after the window rolled does not lower the new window", async () => {
        const { store, key, W, tick } = await setup();
        const batch = { windows: [win(key, W, [["tokens", 1000, 300]])], gauges: [] };
        const old = await store.admit(batch);
        await tick(W + 5);
        await store.admit(batch);
        const refund = await store.adjust({
          windows: [
            {
              key,
              windowMs: W,
              algorithm: "fixed",
              expectStart: old.windows[0]!.start,
              counters: [{ name: "tokens", delta: -300 }],
            },
          ],
        });
        expect(refund.applied).toEqual([false]);
        expect(await values(store, key, W, ["tokens"])).toEqual([300]);
      });

      it("an unguarded delta charges the current window, starting a fresh one when expired", async () => {
        const { store, key, W, tick } = await setup();
        await store.admit({
          windows: [
            win(key, W, [
              ["requests", 10, 4],
              ["tokens", 1000, 100],
            ]),
          ],
          gauges: [],
        });
        await tick(W + 5);
        const r = await store.adjust({
          windows: [
            {
              key,
              windowMs: W,
              algorithm: "fixed",
              counters: [
                { name: "requests", delta: 0 },
                { name: "tokens", delta: 70 },
              ],
            },
          ],
        });
        expect(r.applied).toEqual([true]);
        expect(r.windows[0]!.start).toBe(r.now);
        expect(r.windows[0]!.counters.map((c) => c.value)).toEqual([0, 70]);
      });
    });

    describe("holds", () => {
      /** Holds `amount` of a `spend` counter limited to 100 under lease `id`. */
      const spendHold = (key: string, W: number, id: string, amount: number): AdmitBatch => ({
        windows: [
          {
            key,
            windowMs: W,
            algorithm: "fixed",
            counters: [{ name: "spend", limit: 100, amount: 0, hold: amount, enforce: true }],
          },
        ],
        gauges: [],
        lease: { id, ttlMs: 60_000 },
      });

      it("a hold counts against the limit until released, and release frees it once", async () => {
        const { store, key, W } = await setup();
        const hold = (id: string, amount: number) => spendHold(key, W, id, amount);
        const a = await store.admit(hold("a", 70));
        expect(a.admitted).toBe(true);
        expect(a.windows[0]!.counters[0]).toMatchObject({ value: 0, held: 70 });
        expect((await store.admit(hold("b", 40))).admitted).toBe(false);
        const ref = { id: "a", gauges: [], holds: [{ key, name: "spend" }] };
        const settled = await store.adjust({
          windows: [
            {
              key,
              windowMs: W,
              algorithm: "fixed",
              expectStart: a.windows[0]!.start,
              counters: [{ name: "spend", delta: 55 }],
            },
          ],
          release: ref,
        });
        expect(settled.released).toBe(1);
        expect(settled.windows[0]!.counters[0]).toMatchObject({ value: 55, held: 0 });
        expect((await store.adjust({ windows: [], release: ref })).released).toBe(0);
        expect((await store.admit(hold("b", 45))).admitted).toBe(true);
        expect((await store.admit(hold("c", 1))).admitted).toBe(false);
      });

      it("readBack false: deltas, guards and the release behave the same; only the states may be left out", async () => {
        const { store, key, W } = await setup();
        const other = `${key}-b`;
        const a = await store.admit({
          windows: [
            {
              key,
              windowMs: W,
              algorithm: "fixed",
              counters: [
                { name: "tokens", limit: 1000, amount: 500, enforce: true },
                { name: "spend", limit: 100, amount: 0, hold: 40, enforce: true },
              ],
            },
            {
              key: other,
              windowMs: W,
              algorithm: "sliding",
              counters: [{ name: "tokens", limit: 1000, amount: 500, enforce: true }],
            },
          ],
          gauges: [],
          lease: { id: "L", ttlMs: 60_000 },
        });
        expect(a.admitted).toBe(true);
        const r = await store.adjust({
          readBack: false,
          windows: [
            {
              key,
              windowMs: W,
              algorithm: "fixed",
              expectStart: a.windows[0]!.start,
              counters: [{ name: "tokens", delta: -80 }],
            },
            // a guard that does not match: nothing applied to this window
            {
              key: other,
              windowMs: W,
              algorithm: "sliding",
              expectStart: a.windows[1]!.start - 1,
              counters: [{ name: "tokens", delta: -80 }],
            },
          ],
          release: { id: "L", gauges: [], holds: [{ key, name: "spend" }] },
        });
        expect(r.applied).toEqual([true, false]);
        expect(r.released).toBe(1);
        expect(Array.isArray(r.windows)).toBe(true);
        const after = await store.read({
          windows: [
            { key, windowMs: W, algorithm: "fixed", counters: ["tokens", "spend"] },
            { key: other, windowMs: W, algorithm: "sliding", counters: ["tokens"] },
          ],
          gauges: [],
        });
        expect(after.windows[0]!.counters.map((c) => [c.value, c.held])).toEqual([
          [420, 0],
          [0, 0],
        ]);
        expect(after.windows[1]!.counters[0]!.value).toBe(500);
        // A release alone, without read-back, still answers the clock and what it removed.
        const g = await store.admit({
          windows: [],
          gauges: [{ key, name: "max_parallel_requests", limit: 5, enforce: true }],
          lease: { id: "G", ttlMs: 60_000 },
        });
        const rel = await store.adjust({
          readBack: false,
          windows: [],
          release: { id: "G", gauges: [{ key, name: "max_parallel_requests" }], holds: [] },
        });
        expect(rel.released).toBe(1);
        expect(rel.now).toBeGreaterThanOrEqual(g.now);
        await expect(store.adjust({ windows: [], readBack: "no" as unknown as boolean })).rejects.toMatchObject({
          code: "INVALID_ARGUMENT",
        });
      });

      it("a second hold under the same lease id replaces the first", async () => {
        const { store, key, W } = await setup();
        const hold = (id: string, amount: number) => spendHold(key, W, id, amount);
        expect((await store.admit(hold("a", 30))).windows[0]!.counters[0]!.held).toBe(30);
        const again = await store.admit(hold("a", 50));
        expect(again.admitted).toBe(true);
        expect(again.windows[0]!.counters[0]!.held).toBe(50);
        const query = { windows: [{ key, windowMs: W, algorithm: "fixed" as const, counters: ["spend"] }], gauges: [] };
        expect((await store.read(query)).windows[0]!.counters[0]!.held).toBe(50);
        expect((await store.admit(hold("b", 50))).admitted).toBe(true);
        expect((await store.admit(hold("c", 1))).admitted).toBe(false);
      });

      it("holds in a sliding window of several counters stay on their own counter", async () => {
        const { store, key, W } = await setup();
        const batch = (id: string, hold: number): AdmitBatch => ({
          windows: [
            {
              key,
              windowMs: W,
              algorithm: "sliding",
              counters: [
                { name: "requests", limit: 10, amount: 1, enforce: true },
                { name: "spend", limit: 100, amount: 0, hold, enforce: true },
              ],
            },
          ],
          gauges: [],
          lease: { id, ttlMs: 60_000 },
        });
        const a = await store.admit(batch("a", 70));
        expect(a.admitted).toBe(true);
        expect(a.windows[0]!.counters).toEqual([
          { value: 1, previous: 0, held: 0 },
          { value: 0, previous: 0, held: 70 },
        ]);
        const denied = await store.admit(batch("b", 40));
        expect(denied.admitted).toBe(false);
        expect(denied.denied).toEqual({ type: "counter", window: 0, counter: 1 });
        const query = {
          windows: [{ key, windowMs: W, algorithm: "sliding" as const, counters: ["requests", "spend"] }],
          gauges: [],
        };
        expect((await store.read(query)).windows[0]!.counters.map((c) => [c.value, c.held])).toEqual([
          [1, 0],
          [0, 70],
        ]);
        const settled = await store.adjust({
          windows: [
            {
              key,
              windowMs: W,
              algorithm: "sliding",
              expectStart: a.windows[0]!.start,
              counters: [{ name: "spend", delta: 55 }],
            },
          ],
          release: { id: "a", gauges: [], holds: [{ key, name: "spend" }] },
        });
        expect(settled.released).toBe(1);
        expect(settled.windows[0]!.counters[0]).toMatchObject({ value: 55, held: 0 });
        expect((await store.read(query)).windows[0]!.counters.map((c) => [c.value, c.held])).toEqual([
          [1, 0],
          [55, 0],
        ]);
      });

      it("an unreleased hold expires after its lease TTL", async () => {
        const { store, key, W, tick, injected } = await setup();
        const ttl = injected ? 30_000 : 300;
        const batch = (id: string): AdmitBatch => ({
          windows: [
            {
              key,
              windowMs: W * 10,
              algorithm: "fixed",
              counters: [{ name: "spend", limit: 10, amount: 0, hold: 10, enforce: true }],
            },
          ],
          gauges: [],
          lease: { id, ttlMs: ttl },
        });
        expect((await store.admit(batch("crashed"))).admitted).toBe(true);
        expect((await store.admit(batch("next"))).admitted).toBe(false);
        await tick(ttl + 5);
        expect((await store.admit(batch("next"))).admitted).toBe(true);
      });
    });

    describe("leases", () => {
      const take = (store: CounterStore, key: string, limit: number, id: string, ttlMs = 60_000) =>
        store.admit({ windows: [], gauges: [gauge(key, limit)], lease: { id, ttlMs } });

      it("takes one slot per lease up to the limit; release by id is idempotent and an unknown id frees nothing", async () => {
        const { store, key } = await setup();
        expect((await take(store, key, 2, "l1")).admitted).toBe(true);
        const second = await take(store, key, 2, "l2");
        expect(second.admitted).toBe(true);
        expect(second.gauges[0]!.inFlight).toBe(2);
        expect((await take(store, key, 2, "l3")).admitted).toBe(false);
        const ref = (id: string) => ({ id, gauges: [{ key, name: "max_parallel_requests" }], holds: [] });
        expect((await store.adjust({ windows: [], release: ref("unknown") })).released).toBe(0);
        expect(await inFlight(store, key)).toBe(2);
        expect((await store.adjust({ windows: [], release: ref("l1") })).released).toBe(1);
        expect((await store.adjust({ windows: [], release: ref("l1") })).released).toBe(0);
        expect(await inFlight(store, key)).toBe(1);
        expect((await take(store, key, 2, "l3")).admitted).toBe(true);
      });

      it(`admits exactly 10 of ${concurrency} concurrent leases against max 10`, async () => {
        const { store, key } = await setup();
        const results = await Promise.all(Array.from({ length: concurrency }, (_, i) => take(store, key, 10, `c${i}`)));
        expect(results.filter((r) => r.admitted)).toHaveLength(10);
        expect(await inFlight(store, key)).toBe(10);
      });

      it("a lease never released frees its slot after the TTL; renew keeps a live one", async () => {
        const { store, key, tick, injected } = await setup();
        const ttl = injected ? 30_000 : 400;
        expect((await take(store, key, 2, "crashed", ttl)).admitted).toBe(true);
        expect((await take(store, key, 2, "streaming", ttl)).admitted).toBe(true);
        await tick(ttl * 0.6);
        const ref = { id: "streaming", gauges: [{ key, name: "max_parallel_requests" }], holds: [] };
        expect(await store.renew(ref, ttl)).toBe(1);
        await tick(ttl * 0.6);
        expect(await inFlight(store, key)).toBe(1); // crashed expired, streaming renewed
        await tick(ttl * 0.6);
        expect(await inFlight(store, key)).toBe(0);
        expect(await store.renew(ref, ttl)).toBe(0); // an expired lease is not revived
      });
    });

    describe("isolation and lifecycle", () => {
      it("two prefixes on one backend never see each other's counters", async () => {
        const one = await setup();
        const two = await setup(); // its own prefix; `one.key` names the same window in both
        const batch = { windows: [win(one.key, one.W, [["requests", 1, 1]])], gauges: [] };
        expect((await one.store.admit(batch)).admitted).toBe(true);
        expect((await two.store.admit(batch)).admitted).toBe(true);
        expect((await one.store.admit(batch)).admitted).toBe(false);
      });

      it("close is idempotent", async () => {
        const { store } = await setup();
        await store.close();
        await store.close();
      });
    });

    describe("bad input gets a typed error and changes nothing", () => {
      const cases: Array<[string, (key: string) => AdmitBatch, string]> = [
        ["negative limit", (k) => ({ windows: [win(k, 1000, [["requests", -1, 1]])], gauges: [] }), "INVALID_LIMIT"],
        ["NaN limit", (k) => ({ windows: [win(k, 1000, [["requests", Number.NaN, 1]])], gauges: [] }), "INVALID_LIMIT"],
        ["fractional limit", (k) => ({ windows: [win(k, 1000, [["requests", 1.5, 1]])], gauges: [] }), "INVALID_LIMIT"],
        ["zero window", (k) => ({ windows: [win(k, 0, [["requests", 5, 1]])], gauges: [] }), "INVALID_WINDOW"],
        ["negative window", (k) => ({ windows: [win(k, -5, [["requests", 5, 1]])], gauges: [] }), "INVALID_WINDOW"],
        ["negative amount", (k) => ({ windows: [win(k, 1000, [["requests", 5, -1]])], gauges: [] }), "INVALID_AMOUNT"],
        ["empty key", () => ({ windows: [win("", 1000, [["requests", 5, 1]])], gauges: [] }), "INVALID_SCOPE"],
        ["gauge without a lease", (k) => ({ windows: [], gauges: [gauge(k, 5)] }), "INVALID_ARGUMENT"],
        [
          "a counter named window (the window key)",
          (k) => ({ windows: [win(k, 1000, [["window", 5, 1]])], gauges: [] }),
          "INVALID_ARGUMENT",
        ],
        [
          "the same window twice in one batch",
          (k) => ({ windows: [win(k, 1000, [["requests", 5, 1]]), win(k, 1000, [["requests", 5, 1]])], gauges: [] }),
          "INVALID_ARGUMENT",
        ],
      ];
      for (const [what, make, code] of cases) {
        it(what, async () => {
          const { store, key } = await setup();
          const good = win(key, 1000, [["requests", 5, 1]]);
          const bad = make(`{bad:${uid()}}`);
          const error = await store.admit({ ...bad, windows: [good, ...bad.windows] }).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(TollgateError);
          expect((error as TollgateError).code).toBe(code);
          expect(await values(store, key, 1000)).toEqual([0]);
        });
      }
    });

    describe("an adjustment naming a window or counter twice gets INVALID_ARGUMENT and changes nothing", () => {
      const twice: Array<[string, (key: string, W: number) => AdjustBatch]> = [
        [
          "the same window twice",
          (key, W) => ({
            windows: [
              { key, windowMs: W, algorithm: "fixed", counters: [{ name: "requests", delta: -1 }] },
              { key, windowMs: W, algorithm: "fixed", counters: [{ name: "requests", delta: -1 }] },
            ],
          }),
        ],
        [
          "the same counter twice in one window",
          (key, W) => ({
            windows: [
              {
                key,
                windowMs: W,
                algorithm: "fixed",
                counters: [
                  { name: "requests", delta: -5 },
                  { name: "requests", delta: -2 },
                ],
              },
            ],
          }),
        ],
      ];
      for (const [what, make] of twice) {
        it(what, async () => {
          const { store, key, W } = await setup();
          expect((await store.admit({ windows: [win(key, W, [["requests", 10, 6]])], gauges: [] })).admitted).toBe(
            true,
          );
          const error = await store.adjust(make(key, W)).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(TollgateError);
          expect((error as TollgateError).code).toBe("INVALID_ARGUMENT");
          expect(await values(store, key, W)).toEqual([6]);
        });
      }
    });

    describe("engine on this store", () => {
      it(`the limiter admits exactly 50 of ${concurrency} concurrent requests; denials consume no tokens`, async () => {
        const { store, W } = await setup();
        const limiter = createLimiter({ store });
        const d: Descriptor = { scope: "api_key", value: uid(), requests: 50, tokens: 1_000_000, windowMs: W };
        const results = await Promise.all(
          Array.from({ length: concurrency }, () => limiter.admit([d], { tokens: 100 })),
        );
        expect(results.filter((r) => r.ok)).toHaveLength(50);
        const [requests, tokens] = await limiter.status([d]);
        expect(requests).toMatchObject({ used: 50, remaining: 0 });
        expect(tokens).toMatchObject({ used: 5000 });
      });

      it("settle and release are idempotent and reconcile tokens", async () => {
        const { store, W } = await setup();
        const limiter = createLimiter({ store });
        const d: Descriptor = { scope: "team", value: uid(), requests: 10, tokens: 1000, maxParallel: 1, windowMs: W };
        const a = await limiter.admit([d], { tokens: 300 });
        if (!a.ok) throw new Error("expected admission");
        expect(await limiter.settle(a.reservation, { tokens: 120 })).toBe(true);
        expect(await limiter.settle(a.reservation, { tokens: 120 })).toBe(false);
        expect(await limiter.release(a.reservation)).toBe(false);
        expect((await limiter.status([d])).map((s) => s.used)).toEqual([1, 120, 0]);
        const b = await limiter.admit([d], { tokens: 200 });
        if (!b.ok) throw new Error("expected admission");
        expect(await limiter.release(b.reservation)).toBe(true);
        expect(await limiter.release(b.reservation)).toBe(false);
        expect((await limiter.status([d])).map((s) => s.used)).toEqual([1, 120, 0]);
      });
    });
  });
}
