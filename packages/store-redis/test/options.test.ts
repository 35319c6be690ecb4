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
  ["timeoutMs 0", { timeoutMs: 0 }, "INVALID_DURATION"],
  ["timeoutMs -1", { timeoutMs: -1 }, "INVALID_DURATION"],
  ["timeoutMs 1.5", { timeoutMs: 1.5 }, "INVALID_DURATION"],
  ["timeoutMs as a string", { timeoutMs: "100" as never }, "INVALID_DURATION"],
  ["timeoutMs NaN", { timeoutMs: Number.NaN }, "INVALID_DURATION"],
  ["retryIntervalMs -1", { retryIntervalMs: -1 }, "INVALID_DURATION"],
  ["ticketKeepMs 0", { ticketKeepMs: 0 }, "INVALID_DURATION"],
  ["fallbackInstances 0", { fallbackInstances: 0 }, "INVALID_ARGUMENT"],
  ["fallbackInstances 1.5", { fallbackInstances: 1.5 }, "INVALID_ARGUMENT"],
  ["failurePolicy", { failurePolicy: "maybe" as never }, "INVALID_ARGUMENT"],
  ["fallbackStore not a store", { fallbackStore: {} as never }, "INVALID_ARGUMENT"],
  ["prefix not a string", { prefix: 5 as never }, "INVALID_ARGUMENT"],
  ["now not a function", { now: 5 as never }, "INVALID_ARGUMENT"],
  ["testClock not a function", { testClock: "now" as never }, "INVALID_ARGUMENT"],
];

describe("invalid options are rejected with a typed error before any client is created", () => {
  for (const [what, bad, code] of invalid) {
    it(`${what}: ${code}, and connection and cluster options open no connection`, async () => {
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

  const shapes: Array<[string, unknown]> = [
    ["no options", undefined],
    ["null", null],
    ["a string", "redis://127.0.0.1:6379"],
    ["none of client, connection, cluster", {}],
    ["two of them", { connection: `redis://127.0.0.1:1`, cluster: { nodes: [] } }],
    ["a client that is not ioredis", { client: { evalsha: () => 1 } }],
    ["cluster without a node list", { cluster: { nodes: "127.0.0.1:7000" } }],
    ["connection of the wrong type", { connection: 6379 }],
  ];
  for (const [what, options] of shapes) {
    it(`${what}: INVALID_ARGUMENT, no connection`, async () => {
      const before = connections;
      expect(() => createRedisStore(options as RedisStoreOptions)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
      await new Promise((r) => setTimeout(r, 50));
      expect(connections - before).toBe(0);
    });
  }
});
