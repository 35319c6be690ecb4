/**
 * Extensions mounted by the CLI for a config: the one place where optional parts of the proxy are switched on
 * (the management API and its database, issue 13, is added here when `database_url` is set).
 */
import type { ProxyConfig } from "./config/load.js";
import type { ProxyExtension } from "./server.js";
import { uiExtension } from "./ui-routes.js";

export async function loadExtensions(_config: ProxyConfig): Promise<ProxyExtension[]> {
  // The admin UI at /ui (its database side comes with the management API)
  return [uiExtension()];
}
