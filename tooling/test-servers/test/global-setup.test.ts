import { describe, expect, it, vi } from "vitest";
import type { TestProject } from "vitest/node";

/** Fakes of the three starts: each either resolves to a handle whose stop() is counted, or rejects. */
const starts = vi.hoisted(() => ({
  server: undefined as undefined | (() => Promise<unknown>),
  cluster: undefined as undefined | (() => Promise<unknown>),
  postgres: undefined as undefined | (() => Promise<unknown>),
  stopped: [] as string[],
}));

vi.mock("../src/redis.js", () => ({
  startRedisServer: () => starts.server!(),
  startRedisCluster: () => starts.cluster!(),
}));
vi.mock("../src/postgres.js", () => ({
  startPostgres: () => starts.postgres!(),
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
const server = () => handle("server", { host: "127.0.0.1", port: 1, url: "redis://127.0.0.1:1" });
const cluster = () => handle("cluster", { nodes: [] });
const postgres = () => handle("postgres", { url: "postgres://postgres@127.0.0.1:2/postgres" });

describe("globalSetup: a start that fails", () => {
  it("stops the servers that did start, then rethrows the cluster's error", async () => {
    starts.stopped = [];
    starts.server = server;
    starts.cluster = () => failure("cluster failed");
    starts.postgres = postgres;
    await expect(setup(project)).rejects.toThrow("cluster failed");
    expect(starts.stopped.sort()).toEqual(["postgres", "server"]);
  });

  it("stops the servers that did start, then rethrows the standalone server's error", async () => {
    starts.stopped = [];
    starts.server = () => failure("server failed");
    starts.cluster = cluster;
    starts.postgres = postgres;
    await expect(setup(project)).rejects.toThrow("server failed");
    expect(starts.stopped.sort()).toEqual(["cluster", "postgres"]);
  });

  it("stops both Redis servers when PostgreSQL fails to start, then rethrows its error", async () => {
    starts.stopped = [];
    starts.server = server;
    starts.cluster = cluster;
    starts.postgres = () => failure("postgres failed");
    await expect(setup(project)).rejects.toThrow("postgres failed");
    expect(starts.stopped.sort()).toEqual(["cluster", "server"]);
  });

  it("provides every address and its teardown stops all three", async () => {
    starts.stopped = [];
    starts.server = server;
    starts.cluster = cluster;
    starts.postgres = postgres;
    const provide = vi.fn();
    const teardown = await setup({ provide } as unknown as TestProject);
    expect(provide).toHaveBeenCalledWith("postgres", { url: "postgres://postgres@127.0.0.1:2/postgres" });
    await teardown();
    expect(starts.stopped.sort()).toEqual(["cluster", "postgres", "server"]);
  });
});
