/**
 * Runs a call and measures it, resolving to its value or its error. Pass a function so the clock starts before the
 * call does (a promise passed in was started before `timed` could read the clock, which a busy machine can stretch).
 */
export async function timed<T>(
  call: Promise<T> | (() => Promise<T>),
): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = performance.now();
  try {
    const value = await (typeof call === "function" ? call() : call);
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}
