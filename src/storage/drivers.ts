import type { Config } from "../config.js";
import type { StorageBackend, StorageDriver } from "./backend.js";
import { postgresDriver } from "./postgres/backend.js";
import { sqliteDriver } from "./sqlite/backend.js";

/**
 * The storage engines, chosen by the configuration: the one module that
 * knows both (`backend.ts` holds the contract they share and loads neither).
 */

/** The configured engine: PostgreSQL when `DATABASE_URL` names one, else the SQLite file. */
export function storageDriver(config: Config): StorageDriver {
  return config.databaseUrl === undefined ? sqliteDriver : postgresDriver;
}

/** Opens the configured storage and brings its schema up to date. */
export function openStorage(config: Config): Promise<StorageBackend> {
  return storageDriver(config).open(config);
}
