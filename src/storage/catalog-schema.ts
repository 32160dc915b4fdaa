import {
  type ColumnType,
  DATABASE_COLUMNS,
  SHARED_COLUMNS,
  SPECIALIZED_TABLES,
  type SpecializedTable,
} from "../catalog/catalog.js";

/**
 * The specialized tables' part of the schema, derived from the event catalog
 * for each backend: the tables and columns a schema version adds, and the
 * check that a database's tables hold exactly what the catalog stores.
 */

/** What a backend's DDL needs to say a specialized table. */
export interface SqlDialect {
  /** The backend's name for a column type. */
  readonly columnType: (type: ColumnType) => string;
  /** The `id` column's definition. */
  readonly idColumn: string;
  /** The `created_at` column's definition. */
  readonly createdAtColumn: string;
}

const definition = (dialect: SqlDialect, name: string, type: ColumnType, notNull: boolean) =>
  `  ${name} ${dialect.columnType(type)}${notNull ? " NOT NULL" : ""}`;

/** A specialized table as schema version `version` creates it. */
function createTable(table: SpecializedTable, version: number, dialect: SqlDialect): string {
  const columns = [
    `  id ${dialect.idColumn}`,
    ...SHARED_COLUMNS.map(([name, type]) =>
      definition(dialect, name, type, name !== "duration_ms"),
    ),
    ...table.fields
      .filter((f) => f.column.since <= version)
      .map((f) => definition(dialect, f.column.name, f.column.type, false)),
    `  created_at ${dialect.createdAtColumn}`,
  ];
  return `CREATE TABLE ${table.name} (\n${columns.join(",\n")}\n);\n`;
}

/**
 * The statements schema version `version` runs for the catalog: each
 * specialized table it creates (`table_since`), with the columns it has at
 * that version, and each column it adds to a table created before
 * (`column_since`). Run before the version's own statements, which may index
 * these tables.
 */
export function catalogMigrationSql(version: number, dialect: SqlDialect): string {
  return SPECIALIZED_TABLES.map((table) => {
    if (table.since === version) return createTable(table, version, dialect);
    if (table.since > version) return "";
    return table.fields
      .filter((f) => f.column.since === version)
      .map(
        (f) =>
          `ALTER TABLE ${table.name} ADD COLUMN ${f.column.name} ${dialect.columnType(f.column.type)};\n`,
      )
      .join("");
  }).join("");
}

/** The latest schema version the catalog needs: where its newest table or column was added. */
export function catalogSchemaVersion(): number {
  return Math.max(
    1,
    ...SPECIALIZED_TABLES.flatMap((t) => [t.since, ...t.fields.map((f) => f.column.since)]),
  );
}

/** A database column as the backend describes it. */
export interface TableColumn {
  readonly name: string;
  /** The declared type, as the backend spells it (`BOOLEAN`, `double precision`). */
  readonly type: string;
}

/**
 * Every disagreement between the catalog's specialized tables and the
 * database's: a column the catalog stores that the table lacks or types
 * otherwise (its rows would be refused or stored as NULL), and a column the
 * table has that nothing fills (every row would leave it NULL). Empty when
 * they agree. `columnsOf` answers a table's columns, none when it is missing.
 */
export function catalogTableMismatches(
  dialect: SqlDialect,
  columnsOf: (table: string) => readonly TableColumn[],
): string[] {
  const problems: string[] = [];
  for (const table of SPECIALIZED_TABLES) {
    const actual = columnsOf(table.name);
    if (actual.length === 0) {
      problems.push(`table ${table.name} is missing (a migration creating it is missing)`);
      continue;
    }
    const found = new Map(actual.map((c) => [c.name, c.type.toLowerCase()]));
    const expected = new Map<string, { type: ColumnType; source: string }>([
      ...SHARED_COLUMNS.map(([name, type]) => [name, { type, source: "every event" }] as const),
      ...table.fields.map(
        (f) => [f.column.name, { type: f.column.type, source: `typed field ${f.name}` }] as const,
      ),
    ]);
    for (const [name, { type, source }] of expected) {
      const has = found.get(name);
      const want = dialect.columnType(type).toLowerCase();
      if (has === undefined) {
        problems.push(
          `${table.name}.${name}: the catalog stores ${source} there, but the table has no such column (add a migration, and set its column_since)`,
        );
      } else if (has !== want) {
        problems.push(`${table.name}.${name}: the table says ${has}, the catalog ${want}`);
      }
    }
    for (const name of found.keys()) {
      if (!expected.has(name) && !(DATABASE_COLUMNS as readonly string[]).includes(name)) {
        problems.push(
          `${table.name}.${name}: the column has no source in the event catalog (no typed field with (field_catalog).column names it)`,
        );
      }
    }
  }
  return problems;
}

/** Throws, naming every disagreement, unless the database's tables hold what the catalog stores. */
export function checkCatalogTables(
  dialect: SqlDialect,
  columnsOf: (table: string) => readonly TableColumn[],
): void {
  const problems = catalogTableMismatches(dialect, columnsOf);
  if (problems.length > 0) {
    throw new Error(
      `the database's tables do not match the event catalog:\n  ${problems.join("\n  ")}`,
    );
  }
}
