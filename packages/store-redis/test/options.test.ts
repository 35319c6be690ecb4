import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisStore, type RedisStoreOptions } from "../src/index.js";

/** A TCP listener that only counts the connections it gets: a created client would connect to it at once. */
let listener: Server;
let port: number;
const sockets = new Set<Socket>();
let connections = 0;

beforeAll(async () => {
  listener = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  port = (listener.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => listener.close(() => resolve()));
});

const invalid: Array<[string, Partial<RedisStoreOptions>, string]> = [
  ["timeoutMs", { timeoutMs: 0 }, "INVALID_DURATION"],
  ["retryIntervalMs", { retryIntervalMs: -1 }, "INVALID_DURATION"],
  ["fallbackInstances", { fallbackInstances: 0 }, "INVALID_ARGUMENT"],
  ["failurePolicy", { failurePolicy: "maybe" as never }, "INVALID_ARGUMENT"],
];

describe("invalid failure-policy options are rejected before any client is created", () => {
  for (const [what, bad, code] of invalid) {
    it(`${what}: connection and cluster options open no connection`, async () => {
      const before = connections;
      const sources: RedisStoreOptions[] = [
        { connection: `redis://127.0.0.1:${port}` },
        { connection: { host: "127.0.0.1", port } },
        { cluster: { nodes: [{ host: "127.0.0.1", port }] } },
      ];
      for (const source of sources) {
        expect(() => createRedisStore({ ...source, ...bad })).toThrow(expect.objectContaining({ code }));
      }
      // A client created anyway would have connected (and kept reconnecting) by now.
      await new Promise((r) => setTimeout(r, 200));
      expect(connections - before).toBe(0);
    });
  }
});
