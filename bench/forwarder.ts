/**
 * The floor for any Node proxy: a bare node:http server that forwards each request to the upstream through an undici
 * Pool (keep-alive) and pipes the answer back. No parsing, no auth, no limits. `pnpm bench proxy` row (b).
 * Usage: node bench/forwarder.ts <upstream origin>   (prints `PORT <n>`)
 */
import { createServer } from "node:http";
import { Pool } from "undici";

const upstream = process.argv[2] ?? "http://127.0.0.1:8000";
const pool = new Pool(upstream, { connections: 256, keepAliveTimeout: 30_000 });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    pool
      .request({
        path: req.url ?? "/",
        method: (req.method ?? "GET") as "POST",
        headers: { "content-type": "application/json" },
        body: Buffer.concat(chunks),
      })
      .then(({ statusCode, headers, body }) => {
        res.writeHead(statusCode, { "content-type": String(headers["content-type"] ?? "application/json") });
        body.pipe(res);
      })
      .catch((err: Error) => {
        res.writeHead(502);
        res.end(err.message);
      });
  });
});
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  process.stdout.write(`PORT ${typeof addr === "object" && addr ? addr.port : 0}\n`);
});
process.on("SIGINT", () => process.exit(0));
