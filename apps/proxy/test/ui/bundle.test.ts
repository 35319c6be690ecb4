import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";

const dist = fileURLToPath(new URL("../../dist/ui/", import.meta.url));

describe("the built admin UI (dist/ui, part of pnpm build)", () => {
  it("exists, loads only its own assets (no CDN) and stays small", () => {
    expect(existsSync(`${dist}index.html`), "run `pnpm build` first: it builds the UI into apps/proxy/dist/ui").toBe(
      true,
    );
    const html = readFileSync(`${dist}index.html`, "utf8");
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const assets = readdirSync(`${dist}assets`);
    let first = 0;
    let total = 0;
    for (const f of assets) {
      const text = readFileSync(`${dist}assets/${f}`);
      const gz = gzipSync(text, { level: 9 }).length;
      total += gz;
      if (html.includes(`assets/${f}`)) first += gz;
      // no script, style or font fetched from elsewhere at run time (XML namespaces are not fetches)
      const urls = text.toString("utf8").match(/https?:\/\/[^\s"'`)]+/g) ?? [];
      expect(urls.filter((u) => !u.startsWith("http://www.w3.org/"))).toEqual([]);
    }
    // Budgets with room: Preact app ≈ 25 KiB gzip on first load, uPlot chunk ≈ 23 KiB on demand.
    expect(first).toBeLessThan(40 * 1024);
    expect(total).toBeLessThan(80 * 1024);
  });
});
