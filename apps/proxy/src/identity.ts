/**
 * Plug point 1 (auth): who is calling. The proxy extracts the caller's token (`Authorization: Bearer …`,
 * `x-api-key`, `api-key`, `x-litellm-api-key`) and asks the {@link Authenticator} for an {@link Identity}. Without a
 * database the authenticator is {@link masterKeyAuthenticator} (master key, or open when none is set); the management
 * API (issue 13) replaces it with one that resolves virtual keys, and builds each key's descriptors and budgets there.
 *
 * The request path builds a request's limits and budgets as: identity limits (+ `modelLimits(model)`) + end-user
 * limits and budgets ({@link EndUserResolver}) + the deployment's rpm/tpm + the global budget.
 */

import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { BudgetSpec } from "@tollgate/budgets";
import type { Descriptor } from "@tollgate/core";
import { ProxyHttpError } from "./errors.js";

/** LiteLLM's user roles (plus `anonymous` for an open proxy). */
export type Role =
  | "proxy_admin"
  | "proxy_admin_viewer"
  | "internal_user"
  | "internal_user_viewer"
  | "team"
  | "customer"
  | "anonymous";

/** The caller of one request. Build it once per key and reuse it: the request path never copies it. */
export interface Identity {
  role: Role;
  /** sha256 hex of the virtual key (LiteLLM's `token`); absent for the master key and an open proxy. */
  keyHash?: string;
  keyAlias?: string;
  userId?: string;
  teamId?: string;
  orgId?: string;
  /** Rate-limit descriptors of this caller (key, user, team, team member, organization), applied to every request. */
  limits: readonly Descriptor[];
  /** Per-model descriptors (`model_per_key`, `model_per_team`, ...) for a public model name. @default none */
  modelLimits?: (model: string) => readonly Descriptor[];
  /** Budgets of this caller (key, user, team, team member, organization, per-model entries with `model`). */
  budgets: readonly BudgetSpec[];
  /** Models (public names) this caller may use; `null` = every model. */
  models: readonly string[] | null;
  /** Copied into spend records. */
  metadata?: Record<string, unknown>;
}

/** Resolves a caller. Throw a `ProxyHttpError` (401/403) to refuse. May answer synchronously (the fast path). */
export interface Authenticator {
  authenticate(token: string | undefined, req: IncomingMessage): Identity | Promise<Identity>;
}

/** Limits and budgets of an end user (the body's `user`, or `x-litellm-end-user-id` / `x-litellm-customer-id`). */
export interface EndUserPolicy {
  limits: readonly Descriptor[];
  budgets: readonly BudgetSpec[];
}

/**
 * Resolves an end user's limits and budgets. Without a database: `max_end_user_budget` from the config. The management
 * API may plug one reading its customer table (and may throw a `ProxyHttpError`, e.g. for a blocked end user).
 */
export interface EndUserResolver {
  resolve(endUserId: string, identity: Identity): EndUserPolicy | Promise<EndUserPolicy>;
}

const NONE: readonly Descriptor[] = Object.freeze([]);
const NO_BUDGETS: readonly BudgetSpec[] = Object.freeze([]);

/** The identity of the master key: LiteLLM's `proxy_admin`, no limits of its own. */
export const MASTER_IDENTITY: Identity = Object.freeze({
  role: "proxy_admin",
  limits: NONE,
  budgets: NO_BUDGETS,
  models: null,
  userId: "default_user_id",
}) as Identity;

/** The identity of every caller of an open proxy (no master key). */
export const ANONYMOUS_IDENTITY: Identity = Object.freeze({
  role: "anonymous",
  limits: NONE,
  budgets: NO_BUDGETS,
  models: null,
}) as Identity;

/** `sk-...abcd` as LiteLLM abbreviates keys in messages. */
export function abbreviateKey(key: string): string {
  return key.length <= 4 ? "sk-...****" : `sk-...${key.slice(-4)}`;
}

/**
 * Without a database: the master key is `proxy_admin`; any other token is refused with 401. Without a master key
 * the proxy is open and every caller is {@link ANONYMOUS_IDENTITY}.
 */
export function masterKeyAuthenticator(masterKey: string | null): Authenticator {
  if (masterKey === null) return { authenticate: () => ANONYMOUS_IDENTITY };
  const expected = Buffer.from(masterKey);
  return {
    authenticate(token) {
      if (token === undefined || token === "") {
        throw new ProxyHttpError(401, "Authentication Error, No api key passed in.", "auth_error", "None");
      }
      // constant time for keys of the master key's length (the length itself is not a secret worth hiding)
      const got = Buffer.from(token);
      if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
        throw new ProxyHttpError(
          401,
          `Authentication Error, Invalid proxy server token passed. Received API Key = ${abbreviateKey(token)}`,
          "auth_error",
          "None",
        );
      }
      return MASTER_IDENTITY;
    },
  };
}

/** The caller's token from the request headers (LiteLLM's order), or undefined. */
export function tokenOf(req: IncomingMessage): string | undefined {
  const h = req.headers;
  const auth = h.authorization;
  if (auth !== undefined) {
    if (auth.length > 7 && (auth.startsWith("Bearer ") || auth.startsWith("bearer "))) return auth.slice(7).trim();
    return auth.trim();
  }
  const x = h["x-api-key"] ?? h["api-key"] ?? h["x-litellm-api-key"];
  return typeof x === "string" ? x.trim() : undefined;
}
