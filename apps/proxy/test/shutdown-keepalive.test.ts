/**
 * SIGTERM and kept-alive connections: a request a client (or a load balancer that has not yet seen the instance
 * leave) sends on an idle kept-alive connection after the SIGTERM, while other requests are still draining, is
 * served (with `connection: close`), not cut off with the connection. A rolling restart under load depends on it.
 */
import { connect, type Socket } from "node:net";
import { type OpenAIUpstream, startOpenAIUpstream, startProxyProcess } from "@tollgate/test-servers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, MASTER } from "./helpers.js";

let upstream: OpenAIUpstream;
beforeAll(async () => {
  upstream = await startOpenAIUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] });
const request = (extra = "") =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${MASTER}\r\n` +
  `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

/** Reads one HTTP/1.1 response with a content-length from `sock` (or what arrived before the socket closed). */
function readResponse(sock: Socket): Promise<{ head: string; body: string; closed: boolean }> {
  return new Promise((resolve) => {
    let data = "";
    const done = (closed: boolean) => {
      sock.off("data", onData);
      sock.off("close", onClose);
      const end = data.indexOf("\r\n\r\n");
      resolve({ head: end < 0 ? data : data.slice(0, end), body: end < 0 ? "" : data.slice(end + 4), closed });
    };
    const onData = (c: Buffer) => {
      data += c.toString("utf8");
      const end = data.indexOf("\r\n\r\n");
      const len = /content-length: (\d+)/i.exec(data.slice(0, end));
      if (end >= 0 && len !== null && Buffer.byteLength(data.slice(end + 4)) >= Number(len[1])) done(false);
    };
    const onClose = () => done(true);
    sock.on("data", onData);
    sock.on("close", onClose);
    if (sock.destroyed || sock.readyState !== "open") done(true);
  });
}

describe("SIGTERM with idle kept-alive connections", () => {
  it("a request sent on an idle kept-alive connection during the drain is served with connection: close", async () => {
    const proxy = await startProxyProcess({
      config: `
model_list:
  - model_name: m
    litellm_params: { model: openai/m, api_base: ${upstream.apiBase} }
general_settings:
  master_key: ${MASTER}
  database_url: none
`,
    });
    const port = proxy.port;
    const sock = connect(port, "127.0.0.1");
    sock.on("error", () => {});
    const slow = connect(port, "127.0.0.1");
    try {
      await Promise.all([new Promise((r) => sock.once("connect", r)), new Promise((r) => slow.once("connect", r))]);
      // 1. one request on `sock`: afterwards the connection is idle and kept alive
      sock.write(request());
      const first = await readResponse(sock);
      expect(first.head).toMatch(/^HTTP\/1\.1 200/);
      expect(first.closed).toBe(false);
      // 2. a slow call keeps the drain going
      upstream.reset();
      const slowBody = JSON.stringify({
        model: "m",
        messages: [{ role: "user", content: "hi" }],
        x_test: { delayMs: 3_000 },
      });
      slow.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${MASTER}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(slowBody)}\r\n\r\n${slowBody}`,
      );
      const slowDone = readResponse(slow);
      await eventually(() => expect(upstream.stats.inflight).toBeGreaterThanOrEqual(1), 20_000);
      // 3. SIGTERM; once the proxy stopped listening (a new connection is refused), use the idle connection
      proxy.proc.kill("SIGTERM");
      await eventually(async () => {
        const refused = await new Promise<boolean>((resolve) => {
          const probe = connect(port, "127.0.0.1");
          probe.once("connect", () => {
            probe.destroy();
            resolve(false);
          });
          probe.once("error", () => resolve(true));
        });
        expect(refused).toBe(true);
      }, 20_000);
      const closedBefore = sock.destroyed || sock.readyState !== "open";
      if (!closedBefore) sock.write(request());
      const during = await readResponse(sock);
      expect({ closedBefore, head: during.head.split("\r\n")[0] }).toEqual({
        closedBefore: false,
        head: "HTTP/1.1 200 OK",
      });
      expect(during.head).toMatch(/^HTTP\/1\.1 200/);
      expect(during.head.toLowerCase()).toContain("connection: close");
      expect(JSON.parse(during.body).choices[0].message.content).toContain("Hello");
      expect((await slowDone).head).toMatch(/^HTTP\/1\.1 200/);
      expect(await proxy.exited).toBe(0);
    } finally {
      sock.destroy();
      slow.destroy();
      await proxy.stop("SIGKILL");
    }
  }, 60_000);
});
