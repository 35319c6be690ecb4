/** Shared helpers of the proxy's process tests. */
import OpenAI from "openai";

export const MASTER = "sk-test-master";

/** An official OpenAI client pointed at a proxy (no retries: tests count every request). */
export function client(url: string, apiKey = MASTER): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
}

/** A raw POST to the proxy. */
export async function post(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string; json: any }> {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${MASTER}`, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export async function status(url: string, endUser?: string): Promise<any> {
  const res = await fetch(`${url}/tollgate/status${endUser ? `?end_user=${endUser}` : ""}`, {
    headers: { authorization: `Bearer ${MASTER}` },
  });
  return res.json();
}

export const chat = (content = "Hello there", extra: Record<string, unknown> = {}) => ({
  messages: [{ role: "user" as const, content }],
  ...extra,
});

/** Waits until `check` passes (for effects that land right after a response). */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() - t0 > timeoutMs) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
