import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const packages = fileURLToPath(new URL("../../", import.meta.url));

/** Every source file of the store and of the workspace packages it runs (the code an edge bundle contains). */
function sources(): Array<{ file: string; code: string }> {
  return ["store-upstash", "redis-scripts", "core", "store-memory"].flatMap((pkg) => {
    const dir = join(packages, pkg, "src");
    return readdirSync(dir, { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".ts"))
      .map((f) => ({ file: `${pkg}/src/${f}`, code: readFileSync(join(dir, f), "utf8") }));
  });
}

/** Drops comments so that documentation mentioning `node:events` does not count. */
const code = (s: string) => s.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");

describe("platform-neutral (edge runtimes)", () => {
  it("no Node-only module or global in the store or the packages it bundles", () => {
    const files = sources();
    expect(files.length).toBeGreaterThan(5);
    const offenders = files.flatMap(({ file, code: src }) => {
      const c = code(src);
      const hits = [
        /from\s+["']node:/,
        /import\(\s*["']node:/,
        /from\s+["'](fs|path|crypto|events|net|os|http|https|stream|buffer|child_process)["']/,
        /\brequire\(/,
        /\bBuffer\./,
        /\bprocess\./,
        /\bsetImmediate\(/,
      ].filter((re) => re.test(c));
      return hits.map((re) => `${file}: ${re}`);
    });
    expect(offenders).toEqual([]);
  });
});
