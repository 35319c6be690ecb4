/**
 * `pnpm bench`: runs every benchmark section in one process, prints it, and writes docs/benchmarks.md.
 * Sections are independent modules exporting `default async function run(): Promise<string>` (markdown).
 * `pnpm bench memory redis` runs only the named sections.
 */
import { existsSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { machine } from "./lib.js";

const ALL = ["memory", "redis", "upstash", "budgets"];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const sections = wanted.length > 0 ? wanted : ALL;

const parts: string[] = [];
for (const name of sections) {
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  if (!existsSync(file)) {
    console.error(`bench: no section ${name}`);
    continue;
  }
  console.error(`bench: running ${name} ...`);
  const started = Date.now();
  const mod = (await import(file)) as { default: () => Promise<string> };
  const text = await mod.default();
  console.log(text);
  parts.push(text, `_${name}: ${((Date.now() - started) / 1000).toFixed(0)} s_\n`);
}

const header = [
  "# Benchmarks",
  "",
  `Command: \`pnpm bench${wanted.length ? ` ${wanted.join(" ")}` : ""}\` (builds, then \`node --expose-gc --import tsx bench/run.ts\`).`,
  `Machine: ${machine()}. Run: ${new Date().toISOString()}.`,
  "",
  "This machine is shared and noisy: compare the ratios measured in the same run, not absolute numbers across runs.",
  "",
].join("\n");
const out = fileURLToPath(new URL("../docs/benchmarks.md", import.meta.url));
writeFileSync(out, `${header}\n${parts.join("\n")}`);
console.error(`bench: wrote ${out}`);
process.exit(0);
