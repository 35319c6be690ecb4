/**
 * What every group of the contract suite shares: the store factory's options, a fresh store per test (closed after
 * it), and small builders for batches and reads.
 */
import type { CounterStore, GaugeOp, WindowAlgorithm, WindowOp } from "@tollgate/core";
import { afterEach } from "vitest";

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

/** Options of `runStoreContract` and {@link createContractContext}. */
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

/** One test's store, with what the cases need around it. */
export interface Fixture extends StoreUnderTest {
  /** True when the store's clock is injected (`advance` given): expiry is then exact. */
  injected: boolean;
  /** A window length for the case: 60 s with an injected clock, 1 s on real time. */
  W: number;
  /** Moves time on by `ms`: `advance`, or a real sleep. */
  tick: (ms: number) => Promise<void>;
  /** A fresh window key for the case, e.g. `{test:ab12cd34}`. */
  key: string;
}

/** Handed to every group: the store factory's options and a fresh {@link Fixture} per call of `setup`. */
export interface ContractContext {
  readonly options: StoreContractOptions;
  readonly concurrency: number;
  /** A fresh store for the running test (closed, then cleaned up, after it). */
  setup(): Promise<Fixture>;
}

/** A short random id, for keys and lease ids. */
export const uid = (): string => Math.random().toString(36).slice(2, 10);

/**
 * The context of a suite run: call it at the top level of a test file or inside a `describe` (it registers an
 * `afterEach` that closes the stores of each test). Groups and a store's own cases take it.
 */
export function createContractContext(options: StoreContractOptions): ContractContext {
  const open: StoreUnderTest[] = [];
  afterEach(async () => {
    for (const sut of open.splice(0)) {
      await sut.store.close();
      await sut.cleanup?.();
    }
  });
  return {
    options,
    concurrency: options.concurrency ?? 200,
    async setup() {
      const sut = await options.create({ prefix: `tgtest:${uid()}:` });
      open.push(sut);
      const injected = sut.advance !== undefined;
      const tick = async (ms: number) => {
        if (sut.advance) await sut.advance(ms);
        else await new Promise((r) => setTimeout(r, ms));
      };
      return { ...sut, injected, W: injected ? 60_000 : 1_000, tick, key: `{test:${uid()}}` };
    },
  };
}

/** An admission window: `[name, limit, amount, enforce = true]` per counter. */
export function win(
  key: string,
  windowMs: number,
  counters: Array<[name: string, limit: number, amount: number, enforce?: boolean]>,
  algorithm: WindowAlgorithm = "fixed",
): WindowOp {
  return {
    key,
    windowMs,
    algorithm,
    counters: counters.map(([name, limit, amount, enforce = true]) => ({ name, limit, amount, enforce })),
  };
}

/** An in-flight gauge named `max_parallel_requests`. */
export function gauge(key: string, limit: number, enforce = true): GaugeOp {
  return { key, name: "max_parallel_requests", limit, enforce };
}

/** The committed values of `names` in the window `key`, read without changing anything. */
export async function values(
  store: CounterStore,
  key: string,
  W: number,
  names = ["requests"],
  algorithm: WindowAlgorithm = "fixed",
): Promise<number[]> {
  const r = await store.read({ windows: [{ key, windowMs: W, algorithm, counters: names }], gauges: [] });
  return r.windows[0]!.counters.map((c) => c.value);
}

/** The live holds on counter `name` of the window `key`. */
export async function held(store: CounterStore, key: string, W: number, name: string): Promise<number> {
  const r = await store.read({ windows: [{ key, windowMs: W, algorithm: "fixed", counters: [name] }], gauges: [] });
  return r.windows[0]!.counters[0]!.held;
}

/** Live leases of the `max_parallel_requests` gauge of `key`. */
export async function inFlight(store: CounterStore, key: string): Promise<number> {
  return (await store.read({ windows: [], gauges: [{ key, name: "max_parallel_requests" }] })).gauges[0]!.inFlight;
}
