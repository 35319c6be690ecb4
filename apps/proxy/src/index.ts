/**
 * @tollgate/proxy: the OpenAI-compatible proxy with exact rate limits and USD budgets.
 * Run it with the `tollgate` CLI, or embed it: `createProxy(loadConfigFile("config.yaml")).listen(4000)`.
 */
export type { AdmitRequest, Gate, GateAdmission, Ticket, TicketOutcome } from "./admission.js";
export type { CallKind, CallStatus } from "./call.js";
export {
  ConfigError,
  type Deployment,
  type LoadOptions,
  loadConfigFile,
  type ProxyConfig,
  parseConfig,
  type StoreConfig,
} from "./config/load.js";
export { errorBody, ProxyHttpError } from "./errors.js";
export { Exchange, type Route, type RouteHandler, type RouteOptions, RouteTable } from "./exchange.js";
export {
  ANONYMOUS_IDENTITY,
  type Authenticator,
  abbreviateKey,
  type EndUserPolicy,
  type EndUserResolver,
  type Identity,
  MASTER_IDENTITY,
  masterKeyAuthenticator,
  type Role,
  tokenOf,
} from "./identity.js";
export { createProxy, type ProxyExtension, type ProxyOptions, TollgateProxy, VERSION } from "./server.js";
export type { CallRecord, SpendListener } from "./spend.js";

/** The CLI's name. */
export const PROXY_NAME = "tollgate";
