import { describe, expect, it, vi } from "vitest";
import type { TestProject } from "vitest/node";

/** Fakes of the two starts: each either resolves to a handle whose stop() is counted, or rejects. */
const starts = vi.hoisted(() => ({
  server: undefined as undefined | (() => Promise<unknown>),
  cluster: undefined as undefined | (() => Promise<unknown>),
  stopped: [] as string[],
}));

vi.mock("../src/redis.js", () => ({
  startRedisServer: () => starts.server!(),
  startRedisCluster: () => starts.cluster!(),
}));

const { default: setup } = await import("../src/global-setup.js");

const handle = (name: string, extra: object = {}) =>
  Promise.resolve({
    ...extra,
    async stop() {
      starts.stopped.push(name);
    },
  });
const failure = (what: string) => new Promise((_, reject) => setTimeout(() => reject(new Error(what)), 20));
const project = { provide: vi.fn() } as unknown as TestProject;

describe("globalSetup: a start that fails", () => {
  it("stops the standalone server that did start, then rethrows the cluster's error", async () => {
    starts.stopped = [];
    starts.server = () => handle("server", { host: "127.0.0.1", port: 1, url: "redis://127.0.0.1:1" });
    starts.cluster = () => failure("cluster failed");
    await expect(setup(project)).rejects.toThrow("cluster failed");
    expect(starts.stopped).toEqual(["server"]);
  });

  it("stops the cluster that did start, then rethrows the standalone server's error", async () => {
    starts.stopped = [];
    starts.server = () => failure("server failed");
    starts.cluster = () => handle("cluster", { nodes: [] });
    await expect(setup(project)).rejects.toThrow("server failed");
    expect(starts.stopped).toEqual(["cluster"]);
  });
});
