/**
 * Extensions mounted by the CLI for a config: the one place where optional parts of the proxy are switched on.
 * - the admin UI at /ui;
 * - the management API and its database (issue 13), on unless `database_url: none`: SQLite next to the config
 *   file by default, PostgreSQL when `database_url` / `DATABASE_URL` is `postgres://…`.
 */
import type { ProxyConfig } from "./config/load.js";
import { databaseDisabled, managementExtension } from "./management/extension.js";
import type { ProxyExtension } from "./server.js";
import { uiExtension } from "./ui-routes.js";

export interface ExtensionOptions {
  /** Where the default SQLite file goes. @default the config file's directory */
  databaseDir?: string;
}

export async function loadExtensions(config: ProxyConfig, options: ExtensionOptions = {}): Promise<ProxyExtension[]> {
  if (databaseDisabled(config)) return [uiExtension()];
  const management = managementExtension(config, options);
  // The management extension starts first, so the UI's routes find its backend when they are called.
  return [management, uiExtension({ backend: management.uiBackend })];
}
