import { timingSafeEqual } from "node:crypto";
import type { EntityCache } from "./cache.js";
import { ApiError, dbUnavailable, toApiError, unauthorized } from "./errors.js";
import {
  ANONYMOUS_CALLER,
  buildEndUserPolicy,
  buildKeyIdentity,
  type Caller,
  checkKeyRequest,
  composeRequest,
  type EndUserBundle,
  type EndUserPolicy,
  type IdentitySettings,
  type KeyBundle,
  type KeyIdentity,
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
  private readonly memo = new Map<string, { b: KeyBundle; id: KeyIdentity }>();
  private readonly euMemo = new Map<
    string,
    { row: EndUserBundle["row"]; budget: EndUserBundle["budget"]; policy: EndUserPolicy }
  >();
  readonly masterIdentity: KeyIdentity;
  readonly anonymousIdentity: KeyIdentity;

  constructor(
    readonly cache: EntityCache,
    options: AuthenticatorOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.settings = options.settings ?? {};
    this.masterKey = options.masterKey ?? null;
    this.masterIdentity = buildKeyIdentity(MASTER_CALLER, null, this.settings);
    this.anonymousIdentity = buildKeyIdentity(ANONYMOUS_CALLER, null, this.settings);
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

  /** Secrets seen recently → their sha256 (hashing is most of a cached request's auth cost). */
  private readonly hashes = new Map<string, string>();

  private tokenOf(secret: string): string {
    let token = this.hashes.get(secret);
    if (token !== undefined) return token;
    if (!secret.startsWith("sk-")) {
      throw unauthorized(`LiteLLM Virtual Key expected. Received=${keyNameOf(secret)}, expected to start with 'sk-'.`);
    }
    token = hashSecret(secret);
    if (this.hashes.size >= 100_000) this.hashes.clear();
    this.hashes.set(secret, token);
    return token;
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

  /** The identity of a key state, built once and reused while none of its entities changed. */
  private identityOfBundle(b: KeyBundle): KeyIdentity {
    const m = this.memo.get(b.key.token);
    if (
      m !== undefined &&
      m.b.key === b.key &&
      m.b.keyBudget === b.keyBudget &&
      m.b.user === b.user &&
      m.b.team === b.team &&
      m.b.member === b.member &&
      m.b.memberBudget === b.memberBudget &&
      m.b.organization === b.organization &&
      m.b.organizationBudget === b.organizationBudget
    ) {
      return m.id;
    }
    const id = buildKeyIdentity(this.callerOf(b), b, this.settings);
    if (this.memo.size >= 100_000) this.memo.clear();
    this.memo.set(b.key.token, { b, id });
    return id;
  }

  /**
   * The proxy's auth plug point: a key's {@link KeyIdentity} (the same object for every request while the key and
   * what it depends on are unchanged). Synchronous when cached; a promise when something must be read first.
   * Throws LiteLLM's errors: 401 missing/unknown/blocked key, 400 expired key, 401 blocked team, 503 database down
   * for a key not cached.
   */
  identityFor(secret: string | undefined): KeyIdentity | Promise<KeyIdentity> {
    if (secret === undefined || secret === "") {
      // A proxy without a master key is open (LiteLLM's behaviour): no key is the anonymous caller.
      if (this.masterKey === null) return this.anonymousIdentity;
      throw unauthorized("No api key passed in.");
    }
    if (this.isMaster(secret)) return this.masterIdentity;
    const token = this.tokenOf(secret);
    const b = this.cache.peekKey(token);
    if (b === null) throw this.notFound(secret, token);
    if (b !== undefined) {
      checkKeyRequest(b, undefined, this.now(), this.settings);
      return this.identityOfBundle(b);
    }
    return this.loadBundle(secret, token).then((lb) => {
      checkKeyRequest(lb, undefined, this.now(), this.settings);
      return this.identityOfBundle(lb);
    });
  }

  private async loadBundle(secret: string, token: string): Promise<KeyBundle> {
    let b: KeyBundle | null;
    try {
      b = await this.cache.loadKey(token);
    } catch (err) {
      const e = toApiError(err);
      throw e.status === 503 ? dbUnavailable("cannot verify this key while the database is down") : e;
    }
    if (b === null) throw this.notFound(secret, token);
    return b;
  }

  /** The proxy's end-user plug point: an end user's limits and budgets; 401 for a blocked end user. */
  endUserPolicy(id: string): EndUserPolicy | Promise<EndUserPolicy> {
    checkId("user", id);
    const eu = this.cache.peekEndUser(id);
    if (eu !== undefined) return this.policyOf(eu);
    return this.cache.loadEndUser(id).then(
      (loaded) => this.policyOf(loaded),
      (err) => {
        const e = toApiError(err);
        throw e.status === 503 ? dbUnavailable("cannot read this end user while the database is down") : e;
      },
    );
  }

  private policyOf(eu: EndUserBundle): EndUserPolicy {
    if (eu.row?.blocked) {
      throw unauthorized(`End User=${eu.id} is blocked. Update via \`/customer/unblock\` if you're an admin.`);
    }
    const m = this.euMemo.get(eu.id);
    if (m !== undefined && m.row === eu.row && m.budget === eu.budget) return m.policy;
    const policy = buildEndUserPolicy(eu, this.settings);
    if (this.euMemo.size >= 100_000) this.euMemo.clear();
    this.euMemo.set(eu.id, { row: eu.row, budget: eu.budget, policy });
    return policy;
  }

  /**
   * One request's admission in one call (identity + its model's limits + the end user), with the model check.
   * Synchronous when everything is cached.
   */
  resolveRequest(input: RequestAuthInput): RequestIdentity | Promise<RequestIdentity> {
    const secret = apiKeyOf(input.headers);
    const id = this.identityFor(secret);
    const eu = input.endUser === undefined ? null : this.endUserPolicy(input.endUser);
    if (id instanceof Promise || eu instanceof Promise) {
      return Promise.all([id, eu]).then(([i, e]) => this.compose(i, e, input));
    }
    return this.compose(id, eu, input);
  }

  private compose(id: KeyIdentity, eu: EndUserPolicy | null, input: RequestAuthInput): RequestIdentity {
    if (input.model !== undefined && id.caller.key !== null) {
      const b = this.memo.get(id.caller.key.token)?.b;
      if (b !== undefined) checkKeyRequest(b, input.model, this.now(), this.settings);
    }
    return composeRequest(id, input.model, input.endUser ?? null, eu);
  }
}
