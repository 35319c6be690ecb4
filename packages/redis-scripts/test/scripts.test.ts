import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { SCRIPTS } from "../src/index.js";

describe("scripts", () => {
  it("every exported SHA1 matches its source, recomputed offline", () => {
    expect(SCRIPTS.map((s) => s.name)).toEqual(["admit", "adjust", "renew", "read"]);
    for (const s of SCRIPTS) {
      const sha = createHash("sha1").update(s.source).digest("hex");
      // On failure run: npx tsx packages/redis-scripts/scripts/print-shas.ts --write
      expect(s.sha1, `sha1 of ${s.name}`).toBe(sha);
    }
  });

  it("every script's header documents each KEYS and ARGV position it reads", () => {
    for (const s of SCRIPTS) {
      const file = readFileSync(new URL(`../src/lua/${s.name}.ts`, import.meta.url), "utf8");
      const header = file.slice(0, file.indexOf("export const"));
      expect(header).toContain("KEYS");
      // Every fixed ARGV index the Lua reads is named in the header.
      const used = new Set([...s.source.matchAll(/ARGV\[(\d+)\]/g)].map((m) => m[1]));
      for (const i of used) expect(header, `${s.name} documents ARGV[${i}]`).toContain(`ARGV[${i}]`);
    }
  });

  it("a real server accepts every script and caches it under the same SHA1", async () => {
    const redis = new Redis(inject("redis").url);
    try {
      for (const s of SCRIPTS) expect(await redis.script("LOAD", s.source)).toBe(s.sha1);
    } finally {
      await redis.quit();
    }
  });
});
