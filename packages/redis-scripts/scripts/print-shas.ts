/**
 * Prints the SHA1 of every script. With `--write`, rewrites the SHAS block of src/scripts.ts.
 * Run after changing a script: `npx tsx packages/redis-scripts/scripts/print-shas.ts --write`.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ADJUST_LUA } from "../src/lua/adjust.js";
import { ADMIT_LUA } from "../src/lua/admit.js";
import { READ_LUA } from "../src/lua/read.js";
import { RENEW_LUA } from "../src/lua/renew.js";

const sources = { admit: ADMIT_LUA, adjust: ADJUST_LUA, renew: RENEW_LUA, read: READ_LUA };
const lines = Object.entries(sources).map(
  ([name, src]) => `  ${name}: "${createHash("sha1").update(src).digest("hex")}",`,
);
console.log(lines.join("\n"));
if (process.argv.includes("--write")) {
  const file = fileURLToPath(new URL("../src/scripts.ts", import.meta.url));
  const text = readFileSync(file, "utf8");
  const next = text.replace(
    /\/\/ BEGIN SHAS\n[\s\S]*?\/\/ END SHAS/,
    `// BEGIN SHAS\nconst SHAS = {\n${lines.join("\n")}\n} as const;\n// END SHAS`,
  );
  writeFileSync(file, next);
}
