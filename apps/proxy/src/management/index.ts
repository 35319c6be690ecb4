import type { BudgetSpec, HydrateTotal } from "@tollgate/budgets";
import { type DatabaseHandle, type OpenDatabaseOptions, openDatabase } from "../db/database.js";
import { Repository } from "../db/repository.js";
import { Authenticator, type RequestAuthInput } from "./auth.js";
import { EntityCache, type EntityCacheOptions, type InvalidationBus } from "./cache.js";
import type { ManagementContext, PeriodSettings } from "./context.js";
import type { IdentitySettings, RequestIdentity } from "./identity.js";
import { type FinishedRequest, hydrationTotals, type LedgerOptions, LedgerWriter } from "./ledger.js";
import { ManagementApi } from "./router.js";

export { Authenticator, apiKeyOf, type Headers, type RequestAuthInput } from "./auth.js";
export { createRedisBus, type RedisBusOptions, type RedisPubSubClient } from "./bus.js";
export { EntityCache, type EntityCacheOptions, type EntityKind, type InvalidationBus } from "./cache.js";
export { ApiError, type ErrorBody } from "./errors.js";
export {
  buildIdentity,
  type Caller,
  type IdentitySettings,
  type KeyBundle,
  MASTER_CALLER,
  modelAllowed,
  type RequestIdentity,
  ROLES,
  type Role,
} from "./identity.js";
export { type FinishedRequest, hydrationTotals, type LedgerOptions, LedgerWriter } from "./ledger.js";
export { ManagementApi, type ManagementRequest, type ManagementResponse, ROUTES } from "./router.js";
export { generateSecret, hashSecret, keyNameOf } from "./secrets.js";

/** Options of {@link createManagement}. */
export interface ManagementOptions {
  /** Database URL (see `resolveDatabaseUrl`): a SQLite path or `postgres://…`. */
  databaseUrl: string;
  /** Directory relative SQLite paths are resolved against (the config's). @default the working directory */
  baseDir?: string;
  database?: OpenDatabaseOptions;
  /** The master key (`proxy_admin`). Without one only virtual keys authenticate. */
  masterKey?: string | null;
  /** `litellm_settings` that shape identities (default budgets, access groups) and `max_budget` for `/global/spend`. */
  settings?: IdentitySettings & { maxBudget?: number | null };
  /** Budget period layout; must equal the gate's budgets options. */
  periods?: PeriodSettings;
  /** Cross-instance cache invalidation (Redis pub/sub); without it changes on other instances show after `cache.refreshMs`. */
  bus?: InvalidationBus;
  cache?: EntityCacheOptions;
  ledger?: LedgerOptions;
  now?: () => number;
}

/** The database-backed part of the proxy: management API, request-path identities, the spend ledger. */
export interface Management {
  db: DatabaseHandle;
  repo: Repository;
  cache: EntityCache;
  auth: Authenticator;
  api: ManagementApi;
  ledger: LedgerWriter;
  /** The auth step of an LLM request (see `Authenticator.resolveRequest`). */
  resolveRequest(input: RequestAuthInput): RequestIdentity | Promise<RequestIdentity>;
  /** Queues a finished request's ledger row (synchronous). */
  record(request: FinishedRequest): void;
  /** Budget totals to restore into a fresh memory store (`hydrate({ totals })`); `extra` = the global budget. */
  hydrationTotals(extra?: readonly BudgetSpec[]): Promise<HydrateTotal[]>;
  /** Writes the queued ledger rows, then closes the bus and the database. */
  close(graceMs?: number): Promise<{ unwritten: number }>;
}

/** Opens (and migrates) the database and wires the management API, the identity cache and the ledger. */
export async function createManagement(options: ManagementOptions): Promise<Management> {
  const now = options.now ?? Date.now;
  const db = await openDatabase(options.databaseUrl, options.database, options.baseDir);
  const repo = new Repository(db.db, db.dialect, db.sqlite, db.pool);
  const cache = new EntityCache(repo, options.bus, { now, ...options.cache });
  const settings = options.settings ?? {};
  const periods: Required<PeriodSettings> = {
    timeZone: "UTC",
    reset: "calendar",
    keyPrefix: "budget",
    ...options.periods,
  };
  const auth = new Authenticator(cache, { masterKey: options.masterKey ?? null, settings, now });
  const ctx: ManagementContext = { repo, cache, settings, periods, now };
  const api = new ManagementApi(ctx, auth);
  const ledger = new LedgerWriter(repo, { periods, now, ...options.ledger });
  return {
    db,
    repo,
    cache,
    auth,
    api,
    ledger,
    resolveRequest: (input) => auth.resolveRequest(input),
    record: (r) => ledger.record(r),
    hydrationTotals: (extra = []) => hydrationTotals(repo, settings, periods, now(), extra),
    async close(graceMs) {
      const r = await ledger.close(graceMs);
      await options.bus?.close();
      await db.close();
      return r;
    },
  };
}
