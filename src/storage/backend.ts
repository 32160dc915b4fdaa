import type { Config } from "../config.js";
import type { BatchLedger } from "./batch-ledger.js";
import type { EventStore, EventStoreOptions } from "./group-commit.js";
import type { KeyStore } from "./key-store.js";
import type { RetentionStore } from "./retention.js";
import type { RollupBackfill } from "./rollup-backfill.js";

/**
 * One storage engine behind the service: the same tables and the same
 * semantics (group commit, ack after commit, batch ids claimed with the rows,
 * bounded retention, keys) on the embedded SQLite file or on a PostgreSQL
 * server that several replicas share. Nothing outside `storage/sqlite/` and
 * `storage/postgres/` asks which one it is: what differs is said by
 * {@link StorageCapabilities}, and each backend classifies its own driver's
 * errors into `StorageError`s.
 */
export interface StorageBackend {
  /** The engine's name, for logs: `sqlite` or `postgres`. */
  readonly name: string;
  readonly capabilities: StorageCapabilities;
  /** Where the data is, for logs: the file, or the URL without its password. */
  readonly location: string;
  /** The database file, for the size gauge; undefined when there is none (a server). */
  readonly filePath: string | undefined;
  readonly keys: KeyStore;
  readonly retention: RetentionStore;
  readonly readiness: ReadinessProbe;
  /** The batch ids committed within the window (undefined: batch ids are not claimed). */
  readonly ledger: BatchLedger | undefined;
  /** Reads for the history's queries (src/query/). */
  readonly history: HistoryReader;
  /** Rolls up the events stored before the rollups existed (src/storage/rollup-backfill.ts). */
  readonly rollupBackfill: RollupBackfill;
  createEventStore(options: EventStoreOptions): EventStore;
  /** Seeds and follows the default retention (see `seedRetentionPolicies`). */
  seedRetentionPolicies(retentionDays: number): Promise<void>;
  /** Start-up's writes are done: from now on, writes wait on locks the run-time way. */
  startupDone(): void;
  close(): Promise<void>;
}

/** A bound value of a history query: booleans as the backend stores them. */
export type SqlValue = string | number | boolean | null;

/**
 * Reads the history (src/query/history.ts): SQL that both backends read
 * alike, with `?` placeholders; each row's columns by their (lowercase)
 * aliases. Throws a `StorageError`.
 */
export interface HistoryReader {
  all<T>(sql: string, params: readonly SqlValue[]): Promise<T[]>;
  /**
   * The same, each row an array of its columns in the statement's order: for
   * long reads (an export), where building an object per row was most of a
   * row's cost on SQLite.
   */
  arrays(sql: string, params: readonly SqlValue[]): Promise<SqlValue[][]>;
  /**
   * An SQL expression of a text column as a JSON string literal (`null` for
   * NULL), escaped as `JSON.stringify` escapes it: an export's lines are
   * built by the engine, one value per row instead of one per column.
   */
  jsonText(column: string): string;
}

/** What differs between the engines, as the rest of the service needs to know it. */
export interface StorageCapabilities {
  /**
   * Whether other replicas share the database: then retention policies that
   * another replica's admin API changed are reloaded with the keys.
   */
  readonly sharedByReplicas: boolean;
}

/**
 * A storage engine: how to open it, and how a service that could not start
 * on it (in standby) tells whether it can now, and whether a failure may pass.
 */
export interface StorageDriver {
  readonly name: string;
  /** Opens the storage and brings its schema up to date. */
  open(config: Config): Promise<StorageBackend>;
  /**
   * Whether the database takes the start-up's writes now, tried on a
   * connection of its own that does not hold the event loop long: undefined
   * when it does, else the error.
   */
  probeWritable(config: Config): Promise<unknown>;
  /**
   * Why the service cannot start on its database now, if the reason may pass
   * (read-only, full, locked, unreachable): a short name for readiness.
   * Undefined for anything else (a bad path, missing permissions, a newer
   * schema), which is not waited for.
   */
  transientProblem(error: unknown, config: Config): string | undefined;
  /** The database for logs: the file, or the URL without its password. */
  location(config: Config): string;
  /** Why there is no database to open yet (opening would create one), if so. */
  missing(config: Config): string | undefined;
}

/** How readiness asks the database (each backend provides its own). */
export interface ReadinessProbe {
  /** Writes the one row of `readiness_probe`; throws a `StorageError`. */
  write(): Promise<void>;
  /**
   * A write that proves the database takes a commit, not only a row: SQLite
   * gives the WAL's space back and writes more than a commit of an event
   * appends (`proveWritable`). Without it, {@link write} is the proof.
   */
  prove?(): Promise<void>;
  /** The schema version the database is at. */
  schemaVersion(): Promise<number>;
}
