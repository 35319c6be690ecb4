import { classifyDbError } from "../db/errors.js";

/** OpenAI's error body, as LiteLLM answers it: `code` is the status as a string, `param` often the string "None". */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/**
 * An answer other than 2xx from the management API or the auth step, with LiteLLM's status, `type` and message.
 * Thrown by handlers; the dispatcher turns it into `{ status, body: toBody() }`.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: String(this.status) } };
  }
}

/** 400 `bad_request_error`: the request names a field that is wrong; nothing was changed. */
export function badRequest(message: string, param: string | null = null): ApiError {
  return new ApiError(400, "bad_request_error", message, param);
}

/** 404 `not_found_error`. */
export function notFound(message: string, param: string | null = null): ApiError {
  return new ApiError(404, "not_found_error", message, param);
}

/** 403 `auth_error`: authenticated, but not allowed (LiteLLM's HTTPException(403) raised in auth). */
export function forbidden(message: string, param: string | null = "None"): ApiError {
  return new ApiError(403, "auth_error", message, param);
}

/** 401 `auth_error` with LiteLLM's `Authentication Error, ` prefix. */
export function unauthorized(message: string, param: string | null = "None"): ApiError {
  return new ApiError(401, "auth_error", `Authentication Error, ${message}`, param);
}

/** 503 `service_unavailable`: the database cannot be reached; nothing was changed, try again. */
export function dbUnavailable(detail?: string): ApiError {
  return new ApiError(
    503,
    "service_unavailable",
    `Database unavailable${detail ? `: ${detail}` : ""}. Nothing was changed; retry when the database is back.`,
    null,
  );
}

/**
 * Maps anything a handler threw to an ApiError: ApiErrors pass through, database outages become 503, a unique
 * violation that slipped past the handler's own checks becomes 400, the rest 500 `internal_server_error`.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const kind = classifyDbError(err);
  if (kind === "unavailable") return dbUnavailable(err instanceof Error ? err.message : undefined);
  if (kind === "conflict") return badRequest("an entity with this id or alias already exists");
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError(500, "internal_server_error", `Internal Server Error, ${message}`, "None");
}
