import { TollgateError, type TollgateErrorCode } from "@tollgate/core";
import { isNonNegativeInteger } from "@tollgate/core/internal";

/**
 * Money is an integer number of nano-USD (1 nano-USD = 1e-9 USD) held in a JS number.
 *
 * Range: every value up to `Number.MAX_SAFE_INTEGER` (2^53 - 1 nano-USD, about $9,007,199) is exact, which is
 * the documented range of one budget counter. Redis stores counters as int64, so the same values are exact there.
 */
export type Nano = number;

/** Nano-USD in one USD. */
export const NANO_PER_USD = 1_000_000_000;

/** Largest amount of nano-USD one counter can hold exactly (about $9,007,199). */
export const MAX_NANO = Number.MAX_SAFE_INTEGER;

/** A USD amount as accepted in options: a decimal string (`"0.50"`, `"2.5e-6"`) or a number. */
export type Usd = string | number;

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** How to treat digits below 1e-9 USD. */
export type SubNano = "error" | "floor" | "ceil";

/**
 * Parses a USD amount to exact nano-USD, going through the decimal digits (never through float maths).
 * Numbers are first written as their shortest decimal form (`0.1` -> `"0.1"`), so `0.1` is exactly 100000000.
 *
 * @param subNano `"error"` (default) rejects digits below 1e-9 USD; `"floor"` drops them (a budget of
 *   `0.000000000001` USD becomes 0, i.e. stricter, never looser); `"ceil"` rounds up to the next nano-USD (used
 *   for spend totals read back from float columns, so restored spend is never lower than recorded).
 * @throws TollgateError `code` (default `INVALID_AMOUNT`) for negatives, non-numbers and values beyond {@link MAX_NANO}.
 */
export function parseUsd(
  value: Usd,
  what: string,
  options: { subNano?: SubNano; code?: TollgateErrorCode } = {},
): Nano {
  const code = options.code ?? "INVALID_AMOUNT";
  const bad = (why: string): never => {
    throw new TollgateError(code, `${what} ${why}, got ${JSON.stringify(value)}`);
  };
  let text: string;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) bad("must be a finite USD amount");
    text = String(value);
  } else if (typeof value === "string") {
    text = value.trim();
  } else {
    return bad("must be a USD amount (string or number)");
  }
  const m = DECIMAL.exec(text);
  if (m === null || (m[2] === "" && (m[3] === undefined || m[3] === ""))) return bad("is not a decimal USD amount");
  const sign = m[1];
  let digits = (m[2] ?? "") + (m[3] ?? "");
  // Position of the decimal point inside `digits`, shifted by the exponent.
  const exponent = m[4] === undefined ? 0 : Number(m[4]);
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 400) return bad("has an out-of-range exponent");
  let point = (m[2] ?? "").length + exponent + 9; // scale to nano
  if (point < 0) {
    digits = "0".repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits += "0".repeat(point - digits.length);
  const whole = digits.slice(0, point).replace(/^0+/, "");
  const rest = digits.slice(point);
  const fractional = /[1-9]/.test(rest);
  const subNano = options.subNano ?? "error";
  if (fractional && subNano === "error") bad("has more precision than 1e-9 USD");
  if (whole.length > 16) return bad(`exceeds the maximum of ${formatUsd(MAX_NANO)} USD`);
  const nano = (whole === "" ? 0 : Number(whole)) + (fractional && subNano === "ceil" && sign !== "-" ? 1 : 0);
  if (!Number.isSafeInteger(nano)) return bad(`exceeds the maximum of ${formatUsd(MAX_NANO)} USD`);
  if (sign === "-" && nano !== 0) bad("must not be negative");
  return nano;
}

/** Exact decimal USD text of a nano amount, without trailing zeros: 1500000000 -> `"1.5"`, 1 -> `"0.000000001"`. */
export function formatUsd(nano: Nano): string {
  if (!Number.isSafeInteger(nano)) {
    throw new TollgateError("INVALID_AMOUNT", `an amount of nano-USD must be a safe integer, got ${String(nano)}`);
  }
  const abs = Math.abs(nano);
  const sign = nano < 0 ? "-" : "";
  // The float quotient can round up near 2^53; correct it with exact integer arithmetic.
  let whole = Math.floor(abs / NANO_PER_USD);
  let frac = abs - whole * NANO_PER_USD;
  if (frac < 0) {
    whole--;
    frac += NANO_PER_USD;
  }
  if (frac === 0) return `${sign}${whole}`;
  let width = 9;
  while (frac % 10 === 0) {
    frac /= 10;
    width--;
  }
  return `${sign}${whole}.${String(frac).padStart(width, "0")}`;
}

/** The nearest float USD value of a nano amount (for JSON and display; correctly rounded). */
export function nanoToUsdNumber(nano: Nano): number {
  if (!Number.isSafeInteger(nano)) {
    throw new TollgateError("INVALID_AMOUNT", `an amount of nano-USD must be a safe integer, got ${String(nano)}`);
  }
  return nano / NANO_PER_USD;
}

/**
 * Formats a float the way Python's `repr(float)` / `str(float)` does, which is how LiteLLM prints spend in its
 * messages: shortest round-trip digits, `2.0` for integers, scientific form below 1e-4 or from 1e16 (`7.2e-05`).
 */
export function pythonFloat(x: number): string {
  if (typeof x !== "number") throw new TollgateError("INVALID_ARGUMENT", `expected a number, got ${typeof x}`);
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mantissa, expText] = x.toExponential().split("e") as [string, string];
  const exp = Number(expText);
  const negative = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  const sign = negative ? "-" : "";
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : String(Math.abs(exp));
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const fracPart = digits.slice(exp + 1);
  return `${sign}${intPart}.${fracPart === "" ? "0" : fracPart}`;
}

/**
 * `n` itself when it is a non-negative safe integer (a token count, an amount of nano-USD).
 * @throws TollgateError `INVALID_AMOUNT` otherwise, naming it `what`.
 */
export function nonNegativeInt(n: unknown, what: string): number {
  if (!isNonNegativeInteger(n)) {
    throw new TollgateError("INVALID_AMOUNT", `${what} must be a non-negative integer, got ${n}`);
  }
  return n;
}

/**
 * `a * b` for non-negative safe integers, or a TollgateError when the exact product leaves the safe range.
 * `what` and `model` name the amount in the error (`<what> of <model>`); the message is built only on failure.
 */
export function mulNano(a: number, b: number, what: string, model: string): Nano {
  const p = a * b;
  if (!Number.isSafeInteger(p)) {
    throw new TollgateError(
      "INVALID_AMOUNT",
      `${what} of ${model} (${a} x ${b} nano-USD) exceeds the exact range of one counter`,
    );
  }
  return p;
}

/**
 * `a + b` for non-negative safe integers, or a TollgateError when the sum leaves the safe range.
 * `what` and `model` as in {@link mulNano}.
 */
export function addNano(a: number, b: number, what: string, model: string): Nano {
  const s = a + b;
  if (!Number.isSafeInteger(s)) {
    throw new TollgateError("INVALID_AMOUNT", `${what} of ${model} exceeds the exact range of one counter`);
  }
  return s;
}
