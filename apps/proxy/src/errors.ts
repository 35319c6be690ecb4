/**
 * OpenAI's error shape, as LiteLLM's proxy answers it: `{"error": {"message", "type", "param", "code"}}` with `code`
 * the HTTP status as a string.
 */

/** An error the proxy answers with a status and OpenAI's error body. Thrown by routes and authenticators. */
export class ProxyHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = typeForStatus(status),
    readonly param: string | null = null,
    /** Extra response headers (e.g. retry-after). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = "ProxyHttpError";
  }

  body(): string {
    return errorBody(this.message, this.type, this.param, String(this.status));
  }
}

export function typeForStatus(status: number): string {
  switch (status) {
    case 400:
    case 404:
    case 413:
    case 415:
    case 422:
      return "invalid_request_error";
    case 401:
      return "auth_error";
    case 403:
      return "permission_error";
    case 408:
    case 504:
      return "timeout_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

/** The JSON text of an error body. */
export function errorBody(message: string, type: string, param: string | null, code: string): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

/** A request body problem: 400 invalid_request_error. */
export function badRequest(message: string, param: string | null = null): ProxyHttpError {
  return new ProxyHttpError(400, message, "invalid_request_error", param);
}
