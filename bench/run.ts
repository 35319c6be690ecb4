/**
 * `pnpm bench`: runs every benchmark section in one process, prints it, and writes docs/benchmarks.md.
 * Sections are independent modules exporting `default async function run(): Promise<string>` (markdown).
 * `pnpm bench memory redis` runs only the named sections and replaces just those in docs/benchmarks.md,
 * keeping the others as they were (each section records its own run time).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { machine } from "./lib.js";

const ALL = ["memory", "redis", "upstash", "budgets", "proxy", "management", "fleet"];
/** Sections run only when named (`pnpm bench callgrind`: needs valgrind); kept in the file after the others. */
const NAMED_ONLY = ["callgrind"];
const KNOWN = [...ALL, ...NAMED_ONLY];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const sections = wanted.length > 0 ? wanted : ALL;
const out = fileURLToPath(new URL("../docs/benchmarks.md", import.meta.url));

const open = (name: string) => `<!-- section:${name} -->`;
const close = (name: string) => `<!-- /section:${name} -->`;

/** Sections already recorded, by name. */
function recorded(): Map<string, string> {
  const found = new Map<string, string>();
  if (!existsSync(out)) return found;
  const text = readFileSync(out, "utf8");
  for (const name of KNOWN) {
    const a = text.indexOf(open(name));
    const b = text.indexOf(close(name));
    if (a >= 0 && b > a) found.set(name, text.slice(a, b + close(name).length));
  }
  return found;
}

const kept = recorded();
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
  const stamp = `_${name}: measured ${new Date().toISOString()} in ${((Date.now() - started) / 1000).toFixed(0)} s; rerun with \`pnpm bench ${name}\`_`;
  kept.set(name, `${open(name)}\n${text}\n${stamp}\n${close(name)}`);
}

const header = [
  "# Benchmarks",
  "",
  "Command: `pnpm bench` (builds, then `node --expose-gc --import tsx bench/run.ts`); `pnpm bench <section>` reruns one section.",
  `Machine: ${machine()}.`,
  "",
  "This machine is shared and noisy: compare the ratios measured in the same run, not absolute numbers across runs.",
  "`pnpm bench:lua` (not part of `pnpm bench`) prints where the Redis CPU of one admission goes, phase by phase of the admit script.",
  "`pnpm bench callgrind` (not part of `pnpm bench`: needs valgrind) counts Redis instructions per admit and per settle, whatever the load.",
  "",
].join("\n");
const body = KNOWN.filter((n) => kept.has(n)).map((n) => kept.get(n)!);
writeFileSync(out, `${header}\n${body.join("\n\n")}\n`);
console.error(`bench: wrote ${out}`);
process.exit(0);
