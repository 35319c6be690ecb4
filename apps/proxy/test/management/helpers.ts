import {
  type ApiError,
  createManagement,
  type Management,
  type ManagementOptions,
  type RequestAuthInput,
} from "../../src/management/index.js";
import { freshDatabaseUrl, type TestDialect } from "../db/helpers.js";

export const MASTER = "sk-1234";

export interface TestManagement extends Management {
  /** Calls a management route as `key` (default: the master key). */
  call(
    method: string,
    path: string,
    opts?: { key?: string | null; body?: unknown; rawBody?: string; query?: Record<string, string> },
  ): Promise<{ status: number; body: any }>;
  cleanup(): Promise<void>;
}

/** A management instance on a fresh database of `dialect`, with the master key `sk-1234`. */
export async function startManagement(
  dialect: TestDialect,
  options: Partial<ManagementOptions> = {},
  url?: string,
): Promise<TestManagement> {
  const fresh = url === undefined ? await freshDatabaseUrl(dialect) : { url, cleanup: () => {} };
  const m = await createManagement({ databaseUrl: fresh.url, masterKey: MASTER, ...options });
  return Object.assign(m, {
    async call(
      method: string,
      path: string,
      opts: { key?: string | null; body?: unknown; rawBody?: string; query?: Record<string, string> } = {},
    ) {
      const key = opts.key === undefined ? MASTER : opts.key;
      const headers: Record<string, string> = key === null ? {} : { authorization: `Bearer ${key}` };
      const r = await m.api.handle({
        method,
        path,
        headers,
        query: new URLSearchParams(opts.query ?? {}),
        body: opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
      });
      return { status: r.status, body: r.body as any };
    },
    async cleanup() {
      await m.close(1_000);
      fresh.cleanup();
    },
  });
}

/** The ApiError a request's auth step refuses it with (sync throw or rejected promise); fails when it is admitted. */
export async function resolveError(m: Management, input: RequestAuthInput): Promise<ApiError> {
  try {
    await m.resolveRequest(input);
  } catch (err) {
    return err as ApiError;
  }
  throw new Error("the request was admitted");
}
