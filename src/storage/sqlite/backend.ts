import { accessSync, constants, existsSync } from "node:fs";
import { dirname } from "node:path";
import type { Config } from "../../config.js";
import type { StorageBackend, StorageDriver } from "../backend.js";
import { ledgerWindowMillis } from "../batch-ledger.js";
import { classifying } from "../storage-error.js";
import { createBatchLedger } from "./batch-ledger.js";
import {
  openDatabase,
  proveWritable,
  seedRetentionPolicies,
  sqliteReadinessProbe,
  useStatementBusyWait,
} from "./database.js";
import { sqliteCode, sqliteStorageError } from "./errors.js";
import { createEventStore } from "./event-store.js";
import { createKeyStore } from "./key-store.js";
import { sqliteRetentionStore } from "./retention-store.js";
import { sqliteHistoryReader, sqliteRollupBackfill } from "./rollups.js";

/** How long the standby's probe of the database waits for another process's lock. */
const PROBE_BUSY_WAIT_MILLIS = 100;

/** File-system errors that a database directory can give and later stop giving. */
const TRANSIENT_FS_CODES = new Set(["EROFS", "ENOSPC", "EDQUOT", "EIO"]);

/** SQLite results that pass by themselves: a read-only or full disk, a lock, an I/O error. */
const TRANSIENT_SQLITE = /^SQLITE_(READONLY|FULL|BUSY|LOCKED|IOERR)/;

function openSqlite(config: Config): StorageBackend {
  const db = openDatabase(config.sqlitePath, {
    synchronous: config.sqliteSynchronous,
    busyTimeoutMillis: config.sqliteBusyTimeoutMillis,
  });
  const windowMillis = ledgerWindowMillis(config);
  // Classified too: claim() runs inside the event store's transaction, whose
  // failure the event store classifies again (a storage error passes through).
  const ledger =
    windowMillis === undefined
      ? undefined
      : classifying(createBatchLedger(db, { windowMillis }), sqliteStorageError);
  return {
    name: "sqlite",
    capabilities: { sharedByReplicas: false },
    location: config.sqlitePath,
    filePath: config.sqlitePath,
    keys: classifying(createKeyStore(db), sqliteStorageError),
    retention: classifying(sqliteRetentionStore(db, config.sqlitePath), sqliteStorageError),
    readiness: sqliteReadinessProbe(db),
    ledger,
    rollupBackfill: classifying(sqliteRollupBackfill(db), sqliteStorageError),
    history: classifying(sqliteHistoryReader(db), sqliteStorageError),
    createEventStore: (options) =>
      createEventStore(db, {
        ...options,
        ...(ledger ? { ledger } : {}),
        busyTimeoutMillis: config.sqliteBusyTimeoutMillis,
        waitTimeoutMillis: config.storageTimeoutMillis,
      }),
    async seedRetentionPolicies(retentionDays) {
      seedRetentionPolicies(db, retentionDays);
    },
    startupDone: () => useStatementBusyWait(db),
    async close() {
      db.close();
    },
  };
}

/** Whether the database's directory is on a read-only file system. */
function directoryReadOnly(databasePath: string): boolean {
  try {
    accessSync(dirname(databasePath), constants.W_OK);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EROFS";
  }
}

/** The embedded SQLite file. */
export const sqliteDriver: StorageDriver = {
  name: "sqlite",
  open: async (config) => openSqlite(config),
  async probeWritable(config) {
    try {
      // A short lock wait: this runs on the standby's event loop, which must keep answering.
      const db = openDatabase(config.sqlitePath, {
        synchronous: config.sqliteSynchronous,
        busyTimeoutMillis: PROBE_BUSY_WAIT_MILLIS,
      });
      try {
        // The start-up's own proof: a one-row write passed on a volume where
        // every commit then failed, and the service would leave standby to say
        // ready there.
        proveWritable(db);
      } finally {
        db.close();
      }
      return undefined;
    } catch (error) {
      return error;
    }
  },
  transientProblem(error, config) {
    const code = sqliteCode(error) || String((error as { code?: unknown } | undefined)?.code ?? "");
    if (TRANSIENT_FS_CODES.has(code)) {
      return code === "EROFS" ? "read-only" : code === "ENOSPC" ? "full" : code;
    }
    if (TRANSIENT_SQLITE.test(code)) return sqliteStorageError(error).problem;
    // SQLite cannot create the WAL beside a database on a read-only file system.
    if (code.startsWith("SQLITE_CANTOPEN") && directoryReadOnly(config.sqlitePath)) {
      return "read-only";
    }
    return undefined;
  },
  location: (config) => config.sqlitePath,
  missing: (config) =>
    existsSync(config.sqlitePath) ? undefined : `no database at ${config.sqlitePath}`,
};
