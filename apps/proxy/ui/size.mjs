// Prints the admin UI's bundle sizes (raw and gzip) from dist/ui: `pnpm --filter @tollgate/proxy ui:size`.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const dir = fileURLToPath(new URL("../dist/ui/assets", import.meta.url));
const html = readFileSync(fileURLToPath(new URL("../dist/ui/index.html", import.meta.url)), "utf8");
let first = 0;
let total = 0;
for (const f of readdirSync(dir).sort()) {
  const buf = readFileSync(join(dir, f));
  const gz = gzipSync(buf, { level: 9 }).length;
  const initial = html.includes(`assets/${f}`);
  total += gz;
  if (initial) first += gz;
  console.log(
    `${f.padEnd(36)} ${String(buf.length).padStart(8)} B  ${String(gz).padStart(7)} B gzip${initial ? "  (first load)" : "  (on demand)"}`,
  );
}
console.log(`first load ${(first / 1024).toFixed(1)} KiB gzip, everything ${(total / 1024).toFixed(1)} KiB gzip`);
