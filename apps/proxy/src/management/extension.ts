/**
 * Mounts the management API, its database and the spend ledger on the proxy through its three plug points
 * (auth, routes, spend records), and restores budget counters from the ledger when the store is in memory.
 */
import { dirname } from "node:path";
import { baseKeyOf, createBudgets } from "@tollgate/budgets";
import { Cluster, Redis } from "ioredis";
import type { ProxyConfig } from "../config/load.js";
import { displayDatabaseUrl, resolveDatabaseUrl } from "../db/database.js";
import type { LedgerRow } from "../db/repository.js";
import { ProxyHttpError } from "../errors.js";
import type { Exchange } from "../exchange.js";
import type { Identity } from "../identity.js";
import type { ProxyExtension, TollgateProxy } from "../server.js";
import type { CallRecord } from "../spend.js";
import { managementUiBackend } from "../ui-backend.js";
import type { UiBackend } from "../ui-routes.js";
import { createRedisBus, type RedisPubSubClient } from "./bus.js";
import type { InvalidationBus } from "./cache.js";
import { ApiError } from "./errors.js";
import type { KeyIdentity } from "./identity.js";
import { createManagement, type FinishedRequest, type Management } from "./index.js";
import { periodEnd } from "./ledger.js";
import { ROUTES } from "./router.js";

/** `database_url: none` (or `DATABASE_URL=none`) runs the proxy without a database (LiteLLM's no-DB mode). */
export function databaseDisabled(config: ProxyConfig): boolean {
  const u = config.databaseUrl?.trim().toLowerCase();
  return u === "none" || u === "off" || u === "false";
}

/** Our ApiErrors as the proxy's HTTP errors (same status, type, param, message). */
function toProxyError(err: unknown): unknown {
  return err instanceof ApiError ? new ProxyHttpError(err.status, err.message, err.type, err.param) : err;
}

const CALL_TYPES: Record<CallRecord["callType"], string> = {
  chat: "acompletion",
  completion: "atext_completion",
  embedding: "aembedding",
};

/**
 * A proxy spend record as a ledger row, built in one step (this runs for every request). `modelOf` names a
 * deployment's model (LiteLLM's spend-log `model`); the deployment id goes into `metadata.model_id`.
 */
export function ledgerRowFromCallRecord(
  r: CallRecord,
  modelOf: (deploymentId: string) => string | undefined = () => undefined,
  keyPrefix = "budget",
): LedgerRow {
  const keyId = r.metadata?.tollgate_key_id;
  const charged = r.charged;
  const budgets: LedgerRow["budgets"] = [];
  if (r.spendNano > 0 && charged?.periods !== undefined && charged.periods.length === charged.scopes.length) {
    for (let i = 0; i < charged.scopes.length; i++) {
      const period = charged.periods[i]!;
      const budget = `${baseKeyOf(charged.scopes[i]!, keyPrefix)}:${period}`;
      if (i > 0 && budgets.some((b) => b.budget === budget)) continue;
      budgets.push({ budget, period_end: periodEnd(period), spend_nano: r.spendNano });
    }
  }
  const dep = r.deploymentId;
  const metadata: Record<string, unknown> = { status: r.status, http_status: r.httpStatus, stream: r.stream };
  if (dep !== undefined) metadata.model_id = dep;
  return {
    log: {
      request_id: r.requestId,
      call_type: CALL_TYPES[r.callType] ?? r.callType,
      api_key: r.keyHash ?? "",
      key_id: typeof keyId === "string" ? keyId : null,
      spend_nano: r.spendNano,
      total_tokens: r.inputTokens + r.outputTokens,
      prompt_tokens: r.inputTokens,
      completion_tokens: r.outputTokens,
      start_time: r.startTime,
      end_time: r.endTime,
      model: dep === undefined ? r.model : (modelOf(dep) ?? dep),
      model_group: r.model,
      api_base: r.apiBase ?? "",
      user_id: r.userId ?? null,
      team_id: r.teamId ?? null,
      organization_id: r.orgId ?? null,
      end_user: r.endUserId ?? null,
      key_alias: r.keyAlias ?? null,
      status: r.status === "success" || r.status === "cutoff" ? "success" : "failure",
      metadata,
      request_tags: [],
      requester_ip_address: null,
      budgets: null,
    },
    budgets,
  };
}

/**
 * A proxy spend record as a ledger entry. `modelOf` names a deployment's model (LiteLLM's spend-log `model`, e.g.
 * `gpt-4o-mini`); the deployment id goes into `metadata.model_id`.
 */
export function finishedFromCallRecord(
  r: CallRecord,
  modelOf: (deploymentId: string) => string | undefined = () => undefined,
): FinishedRequest {
  const charged = (
    r as CallRecord & { charged?: { scopes: FinishedRequest["charged"]; periods?: string[]; time: number } }
  ).charged;
  const keyId = r.metadata?.tollgate_key_id;
  return {
    requestId: r.requestId,
    identity: {
      attribution: {
        api_key: r.keyHash ?? "",
        key_id: typeof keyId === "string" ? keyId : null,
        key_alias: r.keyAlias ?? null,
        user_id: r.userId ?? null,
        team_id: r.teamId ?? null,
        organization_id: r.orgId ?? null,
        end_user: r.endUserId ?? null,
      },
    },
    callType: CALL_TYPES[r.callType] ?? r.callType,
    modelGroup: r.model,
    ...(r.deploymentId === undefined ? {} : { model: modelOf(r.deploymentId) ?? r.deploymentId }),
    ...(r.apiBase === undefined ? {} : { apiBase: r.apiBase }),
    status: r.status === "success" || r.status === "cutoff" ? "success" : "failure",
    promptTokens: r.inputTokens,
    completionTokens: r.outputTokens,
    totalTokens: r.inputTokens + r.outputTokens,
    costNano: r.spendNano,
    startTime: r.startTime,
    endTime: r.endTime,
    ...(charged?.scopes === undefined ? {} : { charged: charged.scopes, chargedAt: charged.time }),
    ...(charged?.periods === undefined ? {} : { periods: charged.periods }),
    metadata: {
      status: r.status,
      http_status: r.httpStatus,
      stream: r.stream,
      ...(r.deploymentId === undefined ? {} : { model_id: r.deploymentId }),
    },
  };
}

/** A pub/sub bus on the store's Redis (standalone or Cluster); none for the memory and Upstash stores. */
async function busFor(
  config: ProxyConfig,
  log: { warn(o: object, m: string): void; info(o: object, m: string): void },
): Promise<InvalidationBus | undefined> {
  const s = config.store;
  type Conn = RedisPubSubClient & { on(event: "error", l: (e: unknown) => void): unknown };
  let make: () => Conn;
  if (s.type === "redis") make = () => new Redis(s.url, { maxRetriesPerRequest: 1 });
  else if (s.type === "redis_cluster") {
    make = () =>
      new Cluster(
        s.nodes,
        s.password === undefined ? {} : { redisOptions: { password: s.password } },
      ) as unknown as Conn;
  } else return undefined;
  // Redis down (at start or later) is logged once, and its return once: the clients retry every few seconds.
  let down = false;
  const onError = (err: unknown) => {
    if (down) return;
    down = true;
    log.warn(
      { err: (err as Error)?.message },
      "cache invalidation bus: Redis unreachable, retrying (changes made on other instances show after a reconnect)",
    );
  };
  const publisher = make();
  const subscriber = make();
  publisher.on("error", onError);
  subscriber.on("error", onError);
  subscriber.on("ready", () => {
    if (!down) return;
    down = false;
    log.info({}, "cache invalidation bus: Redis reachable again");
  });
  return createRedisBus({ publisher, subscriber, onError });
}

/**
 * The management extension: virtual keys, users, teams, organizations, customers, budgets and spend on the
 * database `general_settings.database_url` / `DATABASE_URL` names (default: `tollgate.db`, SQLite, next to the
 * config file).
 */
export function managementExtension(
  config: ProxyConfig,
  options: { databaseDir?: string } = {},
): ProxyExtension & { uiBackend: () => UiBackend | undefined } {
  let m: Management | undefined;
  let ui: UiBackend | undefined;
  return {
    name: "management",
    uiBackend: () => ui,
    describe() {
      if (m === undefined) return [];
      const gs = (config.raw as { general_settings?: { key_cache_refresh_seconds?: unknown } }).general_settings;
      const refresh = typeof gs?.key_cache_refresh_seconds === "number" ? gs.key_cache_refresh_seconds : 2;
      const bus =
        config.store.type === "redis" || config.store.type === "redis_cluster"
          ? "Redis pub/sub"
          : `local (${refresh} s refresh)`;
      return [`  database:   ${m.db.dialect} ${m.db.displayUrl} (cache invalidation: ${bus})`];
    },
    async start(proxy: TollgateProxy) {
      const baseDir = options.databaseDir ?? (config.file === undefined ? process.cwd() : dirname(config.file));
      const url = resolveDatabaseUrl(config.databaseUrl, {}, baseDir);
      const ls = (config.raw as { litellm_settings?: Record<string, unknown> }).litellm_settings ?? {};
      const gs = (config.raw as { general_settings?: Record<string, unknown> }).general_settings ?? {};
      const flushSeconds = typeof gs.proxy_batch_write_at === "number" ? gs.proxy_batch_write_at : 1;
      const refreshSeconds =
        typeof gs.key_cache_refresh_seconds === "number" ? gs.key_cache_refresh_seconds : undefined;
      const accessGroups = new Map<string, string[]>();
      for (const d of config.deployments) {
        for (const g of d.accessGroups) {
          const list = accessGroups.get(g) ?? [];
          if (!list.includes(d.modelName)) list.push(d.modelName);
          accessGroups.set(g, list);
        }
      }
      const bus = await busFor(config, proxy.log);
      try {
        m = await createManagement({
          databaseUrl: url,
          baseDir,
          masterKey: config.masterKey,
          settings: {
            maxEndUserBudget: config.maxEndUserBudget,
            maxInternalUserBudget: (ls.max_internal_user_budget as number | string | null | undefined) ?? null,
            internalUserBudgetDuration: (ls.internal_user_budget_duration as string | null | undefined) ?? null,
            maxBudget: config.maxBudget === null ? null : Number(config.maxBudget),
            accessGroups,
          },
          ...(bus === undefined ? {} : { bus }),
          cache: {
            ...(refreshSeconds === undefined ? {} : { refreshMs: refreshSeconds * 1000 }),
            serveStaleOnError: gs.serve_cached_keys_when_db_down !== false,
          },
          ledger: {
            // LiteLLM's proxy_batch_write_at (seconds; LiteLLM waits 10 s by default, Tollgate 1 s)
            flushIntervalMs: Math.max(10, flushSeconds * 1000),
            onError: (err, info) =>
              proxy.log.error({ err: (err as Error)?.message, ...info }, "spend ledger write failed; retrying"),
          },
        });
      } catch (err) {
        await bus?.close();
        throw new Error(
          `cannot open the database ${displayDatabaseUrl(url, baseDir)}: ${(err as Error)?.message ?? err} ` +
            "(general_settings.database_url or DATABASE_URL names it; database_url: none runs without one)",
          { cause: err },
        );
      }
      const mgmt = m;
      proxy.log.info({ database: mgmt.db.displayUrl, dialect: mgmt.db.dialect }, "database ready");

      // 1. auth: virtual keys (and the master key) through the identity cache; end users through the customer table
      proxy.authenticator = {
        authenticate(token) {
          try {
            const id = mgmt.auth.identityFor(token);
            return id instanceof Promise ? (id.catch((e) => Promise.reject(toProxyError(e))) as Promise<Identity>) : id;
          } catch (err) {
            throw toProxyError(err);
          }
        },
      };
      proxy.endUsers = {
        resolve(id) {
          try {
            const p = mgmt.auth.endUserPolicy(id);
            return p instanceof Promise ? p.catch((e) => Promise.reject(toProxyError(e))) : p;
          } catch (err) {
            throw toProxyError(err);
          }
        },
      };

      // 2. routes
      for (const route of ROUTES) {
        for (const method of route.methods) {
          proxy.routes.add(method, route.path, async (ex: Exchange) => {
            const id = ex.identity as unknown as KeyIdentity | undefined;
            const r = await mgmt.api.handleAs(id?.caller, method, route.path, ex.query, ex.body);
            ex.send(r.status, r.body);
          });
        }
      }

      ui = managementUiBackend(mgmt);
      const modelNames = new Map(config.deployments.map((d) => [d.id, d.upstreamModel]));

      // 3. spend records → the ledger (batched off the request path)
      proxy.spend.add({
        record: (r) => mgmt.ledger.push(ledgerRowFromCallRecord(r, (id) => modelNames.get(id))),
        flush: () => mgmt.ledger.flush(),
      });

      // A restart on the memory store: rebuild the budget counters from the ledger before any traffic.
      const store = proxy.counterStore;
      if (config.store.type === "memory" && store !== undefined) {
        const totals = await mgmt.hydrationTotals(proxy.globalBudgets);
        if (totals.length > 0) {
          await createBudgets({ store, unknownModel: "allow" }).hydrate({ totals });
          proxy.log.info({ budgets: totals.length }, "budget counters restored from the spend ledger");
        }
      }
    },
    async stop() {
      const r = await m?.close();
      if (r !== undefined && r.unwritten > 0)
        throw new Error(`${r.unwritten} spend-log rows could not be written (database down)`);
    },
  };
}
