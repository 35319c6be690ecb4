import { describe, expect, it } from "vitest";
import { createIdGenerator } from "../src/index.js";

describe("createIdGenerator", () => {
  it("never repeats within a generator, and generators get different prefixes", () => {
    const a = createIdGenerator();
    const b = createIdGenerator();
    const ids = new Set<string>();
    for (let i = 0; i < 100_000; i++) ids.add(a());
    expect(ids.size).toBe(100_000);
    const prefixOf = (id: string) => id.slice(0, id.indexOf(".") + 1);
    expect(prefixOf(a())).not.toBe(prefixOf(b()));
    expect(a().length).toBeLessThan(24);
  });
});
