import type { Database } from "better-sqlite3";
import type { ColumnType } from "../../catalog/catalog.js";
import {
  catalogMigrationSql,
  checkCatalogTables,
  type SqlDialect,
  type TableColumn,
} from "../catalog-schema.js";
import { MIGRATIONS, type Migration, SCHEMA_VERSION } from "../migrations.js";

/** SQLite's types for the catalog's columns, as the Python schema declared them. */
const SQLITE_TYPES: Readonly<Record<ColumnType, string>> = {
  bool: "BOOLEAN",
  text: "TEXT",
  int4: "INTEGER",
  int8: "INTEGER",
  float8: "REAL",
};

/** How SQLite says a specialized table. */
export const SQLITE_DIALECT: SqlDialect = {
  columnType: (type) => SQLITE_TYPES[type],
  idColumn: "INTEGER PRIMARY KEY AUTOINCREMENT",
  createdAtColumn: "TEXT NOT NULL DEFAULT (datetime('now'))",
};

/** A step's statements on SQLite: the catalog's, then its own. */
export const sqliteStepSql = (step: Migration): string =>
  catalogMigrationSql(step.version, SQLITE_DIALECT) + step.sql;

/** Throws, naming each disagreement, unless the specialized tables hold what the event catalog stores. */
export function checkSqliteCatalogTables(db: Database): void {
  const columns = db.prepare<[string], TableColumn>(
    "SELECT name, type FROM pragma_table_info(?) ORDER BY cid",
  );
  checkCatalogTables(SQLITE_DIALECT, (table) => columns.all(table));
}

/**
 * Brings the database up to {@link SCHEMA_VERSION}. Each step runs in its own
 * transaction together with its `user_version` bump, so a crash leaves the
 * database at a whole version. A database newer than this build is refused,
 * and so is one whose specialized tables disagree with the event catalog.
 */
export function migrate(db: Database): { from: number; to: number } {
  const from = db.pragma("user_version", { simple: true }) as number;
  if (from > SCHEMA_VERSION) {
    throw new Error(
      `database schema version ${from} is newer than this build supports (${SCHEMA_VERSION})`,
    );
  }
  for (const step of MIGRATIONS) {
    if (step.version <= from) continue;
    db.transaction(() => {
      db.exec(sqliteStepSql(step));
      db.pragma(`user_version = ${step.version}`);
    }).immediate();
  }
  checkSqliteCatalogTables(db);
  return { from, to: SCHEMA_VERSION };
}
