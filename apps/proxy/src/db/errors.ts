/** What kind of failure a database error is, for the HTTP answer. */
export type DbErrorKind = "unavailable" | "conflict" | "other";

const PG_UNAVAILABLE_CLASSES = ["08", "53", "57"]; // connection exception, insufficient resources, operator intervention
const NET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "EAI_AGAIN",
]);

/**
 * Classifies an error thrown by Kysely/pg/better-sqlite3:
 * - `unavailable`: the database cannot be reached or is shutting down, starting, busy or out of connections
 *   (answer 503, try again later);
 * - `conflict`: a unique or primary key already exists (answer 400, nothing was written);
 * - `other`: anything else (a bug or a constraint we did not expect: answer 500).
 */
export function classifyDbError(err: unknown): DbErrorKind {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : "";
  if (code === "23505" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE") {
    return "conflict";
  }
  if (NET_CODES.has(code)) return "unavailable";
  if (code.length === 5 && PG_UNAVAILABLE_CLASSES.includes(code.slice(0, 2))) return "unavailable";
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED" || code === "SQLITE_CANTOPEN" || code === "SQLITE_IOERR") {
    return "unavailable";
  }
  if (
    /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connect ECONNREFUSED|Client has encountered a connection error|driver has already been destroyed|Cannot use a pool after calling end/i.test(
      message,
    )
  ) {
    return "unavailable";
  }
  return "other";
}
