import { TollgateError } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { formatDuration, formatUsd, MAX_NANO, parseDuration, parseUsd, pythonFloat } from "../src/index.js";

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof TollgateError ? e.code : `not a TollgateError: ${String(e)}`;
  }
  return undefined;
}

describe("parseUsd: exact nano-USD", () => {
  it("parses decimal strings and numbers without float drift", () => {
    expect(parseUsd("0.1", "x")).toBe(100_000_000);
    expect(parseUsd(0.1, "x")).toBe(100_000_000);
    expect(parseUsd(0.3, "x")).toBe(300_000_000); // 0.1 + 0.2 style drift never appears
    expect(parseUsd("0.000000001", "x")).toBe(1);
    expect(parseUsd(1e-9, "x")).toBe(1);
    expect(parseUsd(2.5e-6, "x")).toBe(2500);
    expect(parseUsd("2.5E-6", "x")).toBe(2500);
    expect(parseUsd("1e3", "x")).toBe(1_000_000_000_000);
    expect(parseUsd("1000000", "x")).toBe(1_000_000_000_000_000);
    expect(parseUsd(".5", "x")).toBe(500_000_000);
    expect(parseUsd("7.", "x")).toBe(7_000_000_000);
    expect(parseUsd(" 0.50 ", "x")).toBe(500_000_000);
    expect(parseUsd("-0", "x")).toBe(0);
  });
  it("sums of many exact amounts stay exact", () => {
    let total = 0;
    for (let i = 0; i < 1000; i++) total += parseUsd("0.000000123", "x");
    expect(total).toBe(123_000);
    expect(formatUsd(total)).toBe("0.000123");
  });
  it("covers at least $1M per counter, up to 2^53-1 nano", () => {
    expect(parseUsd("9007199.254740991", "x")).toBe(MAX_NANO);
    expect(code(() => parseUsd("9007199.254740992", "x"))).toBe("INVALID_AMOUNT");
    expect(code(() => parseUsd("1e20", "x"))).toBe("INVALID_AMOUNT");
  });
  it("rejects sub-nano digits unless told to floor or ceil", () => {
    expect(code(() => parseUsd("0.0000000001", "x"))).toBe("INVALID_AMOUNT");
    expect(parseUsd("0.000000000001", "x", { subNano: "floor" })).toBe(0);
    expect(parseUsd("1.0000000001", "x", { subNano: "floor" })).toBe(1_000_000_000);
    expect(parseUsd(0.30000000000000004, "x", { subNano: "ceil" })).toBe(300_000_001);
    expect(parseUsd("0.3", "x", { subNano: "ceil" })).toBe(300_000_000);
    expect(code(() => parseUsd("0.0000000001", "x", { code: "INVALID_PRICE" }))).toBe("INVALID_PRICE");
  });
  it("rejects negatives, garbage and non-finite numbers with INVALID_AMOUNT", () => {
    for (const bad of ["-1", "abc", "", ".", "1.2.3", "1e", "$1", Number.NaN, Number.POSITIVE_INFINITY, -0.5]) {
      expect(code(() => parseUsd(bad as string, "x"))).toBe("INVALID_AMOUNT");
    }
    expect(code(() => parseUsd(null as unknown as string, "x"))).toBe("INVALID_AMOUNT");
  });
});

describe("formatUsd and pythonFloat", () => {
  it("formats exact decimals", () => {
    expect(formatUsd(0)).toBe("0");
    expect(formatUsd(1)).toBe("0.000000001");
    expect(formatUsd(1_500_000_000)).toBe("1.5");
    expect(formatUsd(MAX_NANO)).toBe("9007199.254740991");
    expect(formatUsd(9_007_198_999_999_999)).toBe("9007198.999999999");
    expect(formatUsd(-1_230_000_000)).toBe("-1.23");
    for (let n = 0; n < 3000; n++) {
      const x = 9_000_000_000_000_000 - 1 + n * 1_000_000_007;
      if (x > MAX_NANO) break;
      expect(parseUsd(formatUsd(x), "x")).toBe(x);
    }
  });
  it("prints floats like Python's repr (LiteLLM's messages)", () => {
    expect(pythonFloat(2)).toBe("2.0");
    expect(pythonFloat(2.37654)).toBe("2.37654");
    expect(pythonFloat(7.2e-5)).toBe("7.2e-05");
    expect(pythonFloat(2e-7)).toBe("2e-07");
    expect(pythonFloat(0.0001)).toBe("0.0001");
    expect(pythonFloat(0.5)).toBe("0.5");
    expect(pythonFloat(1e16)).toBe("1e+16");
    expect(pythonFloat(1234567890123456)).toBe("1234567890123456.0");
    expect(pythonFloat(0)).toBe("0.0");
    expect(pythonFloat(0.1 + 0.2)).toBe("0.30000000000000004");
  });
});

describe("duration grammar", () => {
  it("parses LiteLLM's units", () => {
    expect(parseDuration("30s")).toEqual({ count: 30, unit: "s" });
    expect(parseDuration("30m")).toEqual({ count: 30, unit: "m" });
    expect(parseDuration("30h")).toEqual({ count: 30, unit: "h" });
    expect(parseDuration("30d")).toEqual({ count: 30, unit: "d" });
    expect(parseDuration("2w")).toEqual({ count: 2, unit: "w" });
    expect(parseDuration("1mo")).toEqual({ count: 1, unit: "mo" });
    expect(formatDuration(parseDuration("1mo"))).toBe("1mo");
  });
  it("null, none, null-string and empty mean never reset", () => {
    for (const never of [null, undefined, "", "none", "null", "  "]) expect(parseDuration(never)).toBeNull();
    expect(formatDuration(null)).toBe("never");
  });
  it("None, NULL, Null in any case and with surrounding spaces mean never, as LiteLLM reads them", () => {
    for (const never of ["None", "NONE", "nOnE", "NULL", "Null", " None ", "\tnull\n", " NULL"]) {
      expect(parseDuration(never), JSON.stringify(never)).toBeNull();
    }
  });
  it("reads LiteLLM's prefix forms as its regex (\\d+)(mo|[smhdw]?) does, and warns", () => {
    const cases: Array<[string, string]> = [
      ["1hr", "1h"],
      ["30min", "30m"],
      ["2days", "2d"],
      ["1dd", "1d"],
      ["10sec", "10s"],
      ["1week", "1w"],
      ["1month", "1mo"],
      ["1mon", "1mo"],
      ["30days", "30d"],
      ["5hours", "5h"],
    ];
    for (const [input, readAs] of cases) {
      const warnings: string[] = [];
      const d = parseDuration(input, { onWarning: (message) => warnings.push(message) });
      expect(formatDuration(d), input).toBe(readAs);
      expect(warnings, input).toHaveLength(1);
      expect(warnings[0]).toContain(`read as "${readAs}"`);
    }
    // the exact grammar never warns
    const warnings: string[] = [];
    for (const ok of ["30s", "30m", "30h", "30d", "2w", "1mo", " 1d "]) {
      parseDuration(ok, { onWarning: (m) => warnings.push(m) });
    }
    expect(warnings).toEqual([]);
    // without a listener the prefix form still loads
    expect(parseDuration("1hr")).toEqual({ count: 1, unit: "h" });
  });
  it("rejects everything else with INVALID_DURATION", () => {
    for (const bad of ["30", "30x", "-1d", "0d", "0hr", "1.5h", "d", "1 d", "1M", "1H", "mo", "1y", "5 hours", "x1d"]) {
      expect(
        code(() => parseDuration(bad)),
        bad,
      ).toBe("INVALID_DURATION");
    }
    expect(code(() => parseDuration(30 as unknown as string))).toBe("INVALID_DURATION");
  });
});
