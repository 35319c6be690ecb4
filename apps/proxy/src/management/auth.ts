import { timingSafeEqual } from "node:crypto";
import type { EntityCache } from "./cache.js";
import { ApiError, dbUnavailable, toApiError, unauthorized } from "./errors.js";
import {
  buildIdentity,
  type Caller,
  checkKeyRequest,
  type EndUserBundle,
  type IdentitySettings,
  type KeyBundle,
  MASTER_CALLER,
  type RequestIdentity,
  ROLES,
  type Role,
} from "./identity.js";
import { hashSecret, keyNameOf } from "./secrets.js";
import { checkId } from "./validate.js";

/** Request headers as node:http gives them (lower-case names). */
export type Headers = Record<string, string | string[] | undefined>;

function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The API key of a request: `Authorization: Bearer <key>`, else `x-api-key`, else `x-litellm-api-key` (LiteLLM's
 * headers). Throws LiteLLM's 401s for a missing key and a malformed Authorization header.
 */
export function apiKeyOf(h: Headers): string {
  const auth = header(h, "authorization");
  if (auth !== undefined && auth !== "") {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m === null) {
      throw unauthorized(
        `Malformed API Key passed in. Ensure Key has \`Bearer \` prefix. Passed in: ${auth.length > 64 ? `${auth.slice(0, 61)}...` : auth}`,
      );
    }
    return m[1]!;
  }
  const alt = header(h, "x-api-key") ?? header(h, "x-litellm-api-key");
  if (alt !== undefined && alt !== "") return alt.trim();
  throw unauthorized("No api key passed in.");
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Options of the {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** `general_settings.master_key` (or `LITELLM_MASTER_KEY`): acts as `proxy_admin`. */
  masterKey?: string | null;
  settings?: IdentitySettings;
  now?: () => number;
}

/** A request on the LLM routes, as the auth step sees it. */
export interface RequestAuthInput {
  headers: Headers;
  /** The requested model (`body.model`), when the route has one. */
  model?: string;
  /** The end user (`body.user`, `x-litellm-end-user-id` or `x-litellm-customer-id`). */
  endUser?: string;
}

/**
 * Resolves callers: the master key, or a virtual key through the {@link EntityCache}. `resolveRequest` is the
 * request path's auth step: for a cached key it answers synchronously (no promise, no database); otherwise it
 * loads what it misses and answers a promise.
 */
export class Authenticator {
  private readonly now: () => number;
  readonly settings: IdentitySettings;
  private readonly masterKey: string | null;

  constructor(
    readonly cache: EntityCache,
    options: AuthenticatorOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.settings = options.settings ?? {};
    this.masterKey = options.masterKey ?? null;
  }

  private isMaster(secret: string): boolean {
    return this.masterKey !== null && sameSecret(secret, this.masterKey);
  }

  private notFound(secret: string, token: string): ApiError {
    return new ApiError(
      401,
      "token_not_found_in_db",
      `Authentication Error, Invalid proxy server token passed. Received API Key = ${keyNameOf(secret)}, Key Hash (Token) =${token}. Unable to find token in cache or \`LiteLLM_VerificationTokenTable\``,
      "key",
    );
  }

  private tokenOf(secret: string): string {
    if (!secret.startsWith("sk-")) {
      throw unauthorized(`LiteLLM Virtual Key expected. Received=${keyNameOf(secret)}, expected to start with 'sk-'.`);
    }
    return hashSecret(secret);
  }

  private callerOf(b: KeyBundle): Caller {
    const role = b.user?.user_role;
    return {
      kind: "key",
      // A key without a user (or a user with an unknown role) acts as an internal user.
      role: (ROLES as readonly string[]).includes(role ?? "") ? (role as Role) : "internal_user",
      user_id: b.key.user_id,
      token: b.key.token,
      key_id: b.key.key_id,
      team_id: b.key.team_id,
      key: b.key,
    };
  }

  /** The caller of a management request (blocked and expired keys refused like on the LLM routes). */
  async authenticate(headers: Headers): Promise<{ caller: Caller; bundle: KeyBundle | null }> {
    const secret = apiKeyOf(headers);
    if (this.isMaster(secret)) return { caller: MASTER_CALLER, bundle: null };
    const token = this.tokenOf(secret);
    let bundle: KeyBundle | null | undefined;
    try {
      bundle = this.cache.peekKey(token) ?? (await this.cache.loadKey(token));
    } catch (err) {
      throw toApiError(err);
    }
    if (bundle === null) throw this.notFound(secret, token);
    checkKeyRequest(bundle, undefined, this.now(), this.settings);
    return { caller: this.callerOf(bundle), bundle };
  }

  /**
   * The auth step of an LLM request: who calls, and the descriptors and budgets to admit with. Throws an
   * {@link ApiError} with LiteLLM's status and type when the request may not proceed (401 unknown/blocked key,
   * 400 expired key, 403 model not allowed, 400 bad end-user id, 503 database down for a key not cached).
   */
  resolveRequest(input: RequestAuthInput): RequestIdentity | Promise<RequestIdentity> {
    const secret = apiKeyOf(input.headers);
    const endUser = input.endUser;
    if (endUser !== undefined) checkId("user", endUser);
    let bundle: KeyBundle | null | undefined = null;
    let caller: Caller = MASTER_CALLER;
    let token = "";
    if (!this.isMaster(secret)) {
      token = this.tokenOf(secret);
      bundle = this.cache.peekKey(token);
      if (bundle === null) throw this.notFound(secret, token);
    }
    const eu = endUser === undefined ? null : this.cache.peekEndUser(endUser);
    if (bundle === undefined || eu === undefined) return this.resolveSlow(secret, token, input);
    if (bundle !== null) {
      checkKeyRequest(bundle, input.model, this.now(), this.settings);
      caller = this.callerOf(bundle);
    }
    return this.finish(caller, bundle, eu, input.model);
  }

  private finish(
    caller: Caller,
    bundle: KeyBundle | null,
    eu: EndUserBundle | null,
    model: string | undefined,
  ): RequestIdentity {
    if (eu?.row?.blocked) {
      throw unauthorized(`End User=${eu.id} is blocked. Update via \`/customer/unblock\` if you're an admin.`);
    }
    return buildIdentity(caller, bundle, eu, model, this.settings);
  }

  private async resolveSlow(secret: string, token: string, input: RequestAuthInput): Promise<RequestIdentity> {
    let bundle: KeyBundle | null = null;
    let eu: EndUserBundle | null = null;
    try {
      [bundle, eu] = await Promise.all([
        token === "" ? null : this.cache.loadKey(token),
        input.endUser === undefined ? null : this.cache.loadEndUser(input.endUser),
      ]);
    } catch (err) {
      const e = toApiError(err);
      throw e.status === 503 ? dbUnavailable("cannot verify this key while the database is down") : e;
    }
    let caller: Caller = MASTER_CALLER;
    if (token !== "") {
      if (bundle === null) throw this.notFound(secret, token);
      checkKeyRequest(bundle, input.model, this.now(), this.settings);
      caller = this.callerOf(bundle);
    }
    return this.finish(caller, bundle, eu, input.model);
  }
}
