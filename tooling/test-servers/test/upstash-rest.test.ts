import { type RedisConfigNodejs, Redis as Upstash } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServerHandle, startRedisServer } from "../src/redis.js";
import { startUpstashRestServer, type UpstashRestServer } from "../src/upstash-rest.js";

let redis: RedisServerHandle;
let rest: UpstashRestServer;
let direct: IORedis;

beforeAll(async () => {
  redis = await startRedisServer();
  rest = await startUpstashRestServer({ redisUrl: redis.url, token: "test-token" });
  direct = new IORedis(redis.url);
});

afterAll(async () => {
  direct?.disconnect();
  await rest?.close();
  await redis?.stop();
});

/** The real client, configured so each call is exactly one HTTP request and results come back raw. */
function client(overrides: Partial<RedisConfigNodejs> = {}): Upstash {
  return new Upstash({
    url: rest.url,
    token: rest.token,
    enableAutoPipelining: false,
    enableTelemetry: false,
    retry: false,
    ...overrides,
  });
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${rest.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${rest.token}`, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as unknown };
}

describe("Upstash REST test server", () => {
  it("runs commands from the real @upstash/redis client on the real redis-server", async () => {
    const c = client();
    const key = `rest:${Math.random()}`;
    expect(await c.set(key, "hello")).toBe("OK");
    expect(await c.get(key)).toBe("hello");
    expect(await direct.get(key)).toBe("hello");
    expect(await c.incrby(key.concat(":n"), 5)).toBe(5);
  });

  it("base64 round trip: unicode, JSON-looking and binary-unsafe strings survive, integers stay numbers", async () => {
    const c = client({ automaticDeserialization: false });
    const key = `rest:b64:${Math.random()}`;
    const value = 'héllo 🚦 "quoted" {"a":1} \n tab\t';
    await c.set(key, value);
    expect(await c.get(key)).toBe(value);
    // The wire format really is base64 when the client asks for it.
    const raw = await post("/", ["GET", key], { "upstash-encoding": "base64" });
    expect(raw).toEqual({ status: 200, body: { result: Buffer.from(value).toString("base64") } });
    const plain = await post("/", ["GET", key]);
    expect(plain.body).toEqual({ result: value });
    // Nested arrays and integers from a script.
    const nested = await c.eval("return {1, 'two', {3, 'four'}, false}", [], []);
    expect(nested).toEqual([1, "two", [3, "four"], null]);
    const rawNested = await post("/", ["EVAL", "return {7, 'x', {8}}", 0], { "upstash-encoding": "base64" });
    expect(rawNested.body).toEqual({ result: [7, Buffer.from("x").toString("base64"), [8]] });
  });

  it("numbers in the command array are passed to Redis as strings", async () => {
    const key = `rest:num:${Math.random()}`;
    expect((await post("/", ["SET", key, 42])).body).toEqual({ result: "OK" });
    expect(await direct.get(key)).toBe("42");
  });

  it("answers Redis errors as {error} with status 400, including NOSCRIPT for EVALSHA", async () => {
    const missing = await post("/", ["EVALSHA", "0".repeat(40), 0]);
    expect(missing.status).toBe(400);
    expect((missing.body as { error: string }).error).toMatch(/^NOSCRIPT/);
    await expect(client().evalsha("0".repeat(40), [], [])).rejects.toThrow(/NOSCRIPT/);
    const bad = await post("/", ["NOT_A_COMMAND"]);
    expect(bad.status).toBe(400);
    expect((bad.body as { error: string }).error).toMatch(/unknown command/i);
  });

  it("the client's Script helper falls back from EVALSHA to EVAL on NOSCRIPT", async () => {
    const c = client();
    const script = c.createScript<number>(`return ${Math.floor(Math.random() * 1e9)} + 1`);
    const before = rest.requests;
    const first = await script.exec([], []);
    expect(rest.requests - before).toBe(2); // EVALSHA -> NOSCRIPT -> EVAL
    expect(await script.exec([], [])).toBe(first);
    expect(rest.requests - before).toBe(3); // cached now: one EVALSHA
    expect(rest.log.slice(-3).map((r) => r.commands[0])).toEqual(["EVALSHA", "EVAL", "EVALSHA"]);
  });

  it("rejects a wrong or missing token with 401 and an error body", async () => {
    const wrong = await fetch(`${rest.url}/`, {
      method: "POST",
      headers: { authorization: "Bearer nope" },
      body: '["PING"]',
    });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: string }).error).toMatch(/auth/);
    const missing = await fetch(`${rest.url}/`, { method: "POST", body: '["PING"]' });
    expect(missing.status).toBe(401);
    await expect(client({ token: "wrong-token" }).get("x")).rejects.toThrow(/auth/);
  });

  it("pipeline answers one {result}|{error} per command", async () => {
    const key = `rest:pipe:${Math.random()}`;
    const res = await post("/pipeline", [
      ["SET", key, "v"],
      ["INCR", key],
      ["GET", key],
    ]);
    expect(res.status).toBe(200);
    const body = res.body as Array<{ result?: unknown; error?: string }>;
    expect(body[0]).toEqual({ result: "OK" });
    expect(body[1]?.error).toMatch(/not an integer/);
    expect(body[2]).toEqual({ result: "v" });

    const p = client().pipeline();
    p.set(`${key}:2`, "a");
    p.get(`${key}:2`);
    expect(await p.exec()).toEqual(["OK", "a"]);
  });

  it("multi-exec runs the commands as one transaction", async () => {
    const key = `rest:multi:${Math.random()}`;
    const tx = client().multi();
    tx.incr(key);
    tx.incr(key);
    tx.get(key);
    expect(await tx.exec()).toEqual([1, 2, 2]);
    // A command rejected while queueing aborts the whole transaction.
    const aborted = await post("/multi-exec", [["INCR", key], ["NOT_A_COMMAND"]]);
    expect(aborted.status).toBe(400);
    expect((aborted.body as { error: string }).error).toMatch(/EXECABORT|unknown command/i);
    expect(await direct.get(key)).toBe("2");
  });

  it("counts requests, and pause() stops answering until resume()", async () => {
    rest.resetLog();
    const c = client();
    await c.ping();
    expect(rest.requests).toBe(1);

    rest.pause();
    const ctl = new AbortController();
    const hanging = fetch(`${rest.url}/`, {
      method: "POST",
      headers: { authorization: `Bearer ${rest.token}` },
      body: '["INCR","rest:paused"]',
      signal: ctl.signal,
    });
    const outcome = await Promise.race([
      hanging.then(() => "answered"),
      new Promise((r) => setTimeout(() => r("still waiting"), 200)),
    ]);
    expect(outcome).toBe("still waiting");
    expect(rest.requests).toBe(2);
    ctl.abort();
    await hanging.catch(() => undefined);

    rest.resume();
    expect(await c.ping()).toBe("PONG");
    expect(await direct.get("rest:paused")).toBeNull(); // the request held while paused never ran
    expect(rest.requests).toBe(3);
  });
});
