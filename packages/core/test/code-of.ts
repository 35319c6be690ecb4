import { expect } from "vitest";
import { TollgateError } from "../src/errors.js";

/** Runs `fn`, expects a TollgateError and returns its code. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TollgateError);
    return (e as TollgateError).code;
  }
  throw new Error("expected a TollgateError, nothing was thrown");
}
