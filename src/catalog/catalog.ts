import {
  create,
  type DescField,
  type DescMessage,
  getOption,
  hasOption,
  type JsonObject,
  ScalarType,
} from "@bufbuild/protobuf";
import {
  field_catalog,
  HistogramSource,
  kind_catalog,
  LegacyPlace,
  legacy_names,
} from "../../gen/mcp/metrics/v1/catalog_pb.js";
import { type Event, EventSchema } from "../../gen/mcp/metrics/v1/events_pb.js";

/**
 * The event catalog, read from the options on the messages of `events.proto`
 * (`catalog.proto` declares them; docs/event-catalog.md explains them). Every
 * fact about an event kind is declared there once; this module turns the
 * descriptors into the plain tables the rest of the service reads: the legacy
 * type list, the typed fields and their legacy keys, the specialized tables
 * and their columns, the instruments and their labels. A catalog that
 * contradicts itself (a label naming no field, a column on a kind without a
 * table, a kind without an instrument decision) throws {@link CatalogError}
 * when this module loads, so the service never starts with it and the first
 * test that imports it fails with the message.
 */

/** A contradiction in the catalog, naming the message and field at fault. */
export class CatalogError extends Error {
  override readonly name = "CatalogError";
}

/** Where a typed field lives in the legacy JSON shape. */
export type LegacyOrigin = "dimensions" | "metadata";

/** How a typed field's value is represented. */
export type TypedFieldType = "bool" | "string" | "int" | "double" | "enum";

/** A stored column's type, named as PostgreSQL's arrays of the grouped insert name it. */
export type ColumnType = "bool" | "text" | "int4" | "int8" | "float8";

/** An instrument of the catalog: its exported name and description. */
export interface InstrumentSpec {
  readonly name: string;
  readonly description: string;
}

/** One typed field of an event kind, with the legacy key it maps to and where it is stored. */
export interface TypedField {
  /** Proto field name, which is also the legacy key and the column name, e.g. `user_hash`. */
  readonly name: string;
  /** Property name on the generated message, e.g. `userHash`. */
  readonly localName: string;
  readonly origin: LegacyOrigin;
  /** Every legacy key read into this field: `name`, then other names such as `vector_search_time_ms`. */
  readonly legacyKeys: readonly string[];
  readonly type: TypedFieldType;
  /** Smallest and largest whole value an `int` field takes. */
  readonly range?: readonly [number, number];
  /** Whether an `int` field is 64-bit, hence a bigint on the generated message. */
  readonly bigint?: boolean;
  /** For enums: the legacy text of each non-zero value, e.g. 1 -> `initialize_to_tools_list`. */
  readonly labels?: ReadonlyMap<number, string>;
  /** For enums: the reverse of `labels`, plus the other names emitters use for a value. */
  readonly values?: ReadonlyMap<string, number>;
  /** The column of the kind's specialized table that stores it, if any. */
  readonly column?: ColumnSpec;
  /** A histogram of the field's milliseconds, in seconds, if any. */
  readonly histogramMs?: InstrumentSpec;
}

/** A specialized table's column that a typed field fills. */
export interface ColumnSpec {
  readonly name: string;
  readonly type: ColumnType;
  /** Its place among the table's catalog columns ({@link SpecializedTable.fields}). */
  readonly index: number;
  /** The schema version whose migration added it (1: the table's first). */
  readonly since: number;
}

/** A specialized table: the columns beyond the ones every specialized table shares. */
export interface SpecializedTable {
  readonly name: string;
  /** The schema version whose migration created it. */
  readonly since: number;
  /** Its typed fields' columns, in field order. */
  readonly fields: readonly (TypedField & { readonly column: ColumnSpec })[];
}

/** One event kind: a case of `Event.kind`, which is also a legacy metric `type`. */
export interface EventKind {
  /** Legacy metric type and proto field name, e.g. `auth_request`. */
  readonly name: string;
  /** The oneof case on the generated message, e.g. `authRequest`. */
  readonly localName: string;
  /** Its field number in `Event`. */
  readonly number: number;
  readonly message: DescMessage;
  readonly fields: readonly TypedField[];
  /** Whether `Event.value` must be set (it is the measurement itself, not a count). */
  readonly valueRequired: boolean;
  /** The table beside `metrics` that stores the kind's columns, if any. */
  readonly table?: SpecializedTable;
  /** Counts the kind's events, one per event. */
  readonly counter?: InstrumentSpec;
  /** Records the kind's durations (from `duration_ms`) or its value (seconds). */
  readonly histogram?: InstrumentSpec & { readonly source: "duration_ms" | "value_seconds" };
  /** The typed fields that label the kind's instruments, in label order: also the rollups' dimensions. */
  readonly labels: readonly string[];
  /** The label fields, in label order. */
  readonly labelFields: readonly TypedField[];
  /** The bool field whose false makes an event an error (rollups' `errors`), if the kind has one. */
  readonly outcome?: TypedField;
}

/**
 * The columns every specialized table has before the catalog's, with their
 * types: the event's request id, timestamp, service and duration. (`id` and
 * `created_at` are filled by the database.)
 */
export const SHARED_COLUMNS: readonly (readonly [name: string, type: ColumnType])[] = [
  ["request_id", "text"],
  ["timestamp", "text"],
  ["service", "text"],
  ["duration_ms", "float8"],
];

/** Columns of a specialized table that the database fills. */
export const DATABASE_COLUMNS = ["id", "created_at"] as const;

const INT32: readonly [number, number] = [-(2 ** 31), 2 ** 31 - 1];
const SAFE: readonly [number, number] = [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/** The field's value type, and for integers its range; anything but a scalar or enum has no home. */
function valueType(field: DescField): Pick<TypedField, "type" | "range" | "bigint"> {
  const where = `${field.parent.typeName}.${field.name}`;
  if (field.fieldKind === "enum") return { type: "enum" };
  if (field.fieldKind !== "scalar") {
    throw new CatalogError(
      `${where}: a typed field must be a scalar or an enum (a ${field.fieldKind} has no legacy key or column to live in)`,
    );
  }
  switch (field.scalar) {
    case ScalarType.BOOL:
      return { type: "bool" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "double" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "int", range: INT32 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "int", range: SAFE, bigint: true };
    default:
      throw new CatalogError(
        `${where}: its scalar type has no legacy JSON form here (use bool, string, double, int32 or int64)`,
      );
  }
}

/** The column type of a typed field's value type. */
function columnType(field: Pick<TypedField, "type" | "bigint">): ColumnType {
  switch (field.type) {
    case "bool":
      return "bool";
    case "string":
    case "enum":
      return "text";
    case "double":
      return "float8";
    case "int":
      return field.bigint ? "int8" : "int4";
  }
}

/** An enum's legacy texts: the value's name without the enum's prefix, lowercased, plus its `legacy_names`. */
function enumTexts(field: DescField): Pick<TypedField, "labels" | "values"> {
  if (field.fieldKind !== "enum") return {};
  const prefix = field.enum.sharedPrefix ?? "";
  const labels = new Map<number, string>();
  const values = new Map<string, number>();
  for (const v of field.enum.values) {
    if (v.number === 0) continue;
    const text = v.name.slice(prefix.length).toLowerCase();
    labels.set(v.number, text);
    values.set(text, v.number);
  }
  for (const v of field.enum.values) {
    for (const alias of getOption(v, legacy_names)) {
      if (values.has(alias)) {
        throw new CatalogError(`${field.enum.typeName}.${v.name}: legacy name ${alias} is taken`);
      }
      values.set(alias, v.number);
    }
  }
  return { labels, values };
}

/** Column names every specialized table has already, which no typed field may take. */
const RESERVED_COLUMNS = new Set([
  "id",
  "request_id",
  "timestamp",
  "service",
  "duration_ms",
  "created_at",
]);

/**
 * Tables of the schema that are not a kind's, which no kind may claim, and
 * names PostgreSQL reserves, which no table or column may take unquoted.
 */
const RESERVED_TABLES = new Set([
  "metrics",
  "api_keys",
  "retention_policies",
  "ingest_batches",
  "readiness_probe",
  "schema_migrations",
]);
const SQL_RESERVED = new Set([
  "all",
  "and",
  "any",
  "array",
  "as",
  "asc",
  "both",
  "case",
  "cast",
  "check",
  "collate",
  "column",
  "constraint",
  "create",
  "default",
  "desc",
  "distinct",
  "do",
  "else",
  "end",
  "except",
  "false",
  "for",
  "foreign",
  "from",
  "grant",
  "group",
  "having",
  "in",
  "initially",
  "intersect",
  "into",
  "leading",
  "limit",
  "not",
  "null",
  "offset",
  "on",
  "only",
  "or",
  "order",
  "primary",
  "references",
  "returning",
  "select",
  "some",
  "table",
  "then",
  "to",
  "trailing",
  "true",
  "union",
  "unique",
  "user",
  "using",
  "when",
  "where",
  "window",
  "with",
]);

function typedField(
  field: DescField,
  table: string,
  tableSince: number,
  columnIndex: number,
): TypedField {
  const options = getOption(field, field_catalog);
  const where = `${field.parent.typeName}.${field.name}`;
  const type = valueType(field);
  const histogramMs = options.histogramMs;
  if (histogramMs !== undefined && type.type !== "double" && type.type !== "int") {
    throw new CatalogError(`${where}: histogram_ms needs a number of milliseconds`);
  }
  if (options.column && table === "") {
    throw new CatalogError(
      `${where}: (field_catalog).column is set, but ${field.parent.name} has no (kind_catalog).table to hold it`,
    );
  }
  if (!options.column && options.columnSince !== 0) {
    throw new CatalogError(`${where}: column_since is set on a field that is not a column`);
  }
  if (options.column && (RESERVED_COLUMNS.has(field.name) || SQL_RESERVED.has(field.name))) {
    throw new CatalogError(
      `${where}: a column may not be named ${field.name} (${RESERVED_COLUMNS.has(field.name) ? "every specialized table has it already" : "an SQL reserved word"})`,
    );
  }
  return {
    name: field.name,
    localName: field.localName,
    origin: options.legacy === LegacyPlace.METADATA ? "metadata" : "dimensions",
    legacyKeys: [field.name, ...options.legacyAliases],
    ...type,
    ...enumTexts(field),
    ...(options.column
      ? {
          column: {
            name: field.name,
            type: columnType(type),
            index: columnIndex,
            // Unset: the table's own version (a column of a new table comes with it).
            since: options.columnSince === 0 ? tableSince : options.columnSince,
          },
        }
      : {}),
    ...(histogramMs ? { histogramMs: instrument(histogramMs, `${where}.histogram_ms`) } : {}),
  };
}

function instrument(
  spec: { readonly name: string; readonly description: string },
  where: string,
): InstrumentSpec {
  if (!/^[a-zA-Z_][a-zA-Z0-9_.]*$/.test(spec.name) || spec.description === "") {
    throw new CatalogError(
      `${where}: an instrument needs a name ([a-zA-Z_][a-zA-Z0-9_.]*) and a description`,
    );
  }
  return { name: spec.name, description: spec.description };
}

/** Fails where two fields of a kind answer to the same legacy key. */
function checkLegacyKeys(message: DescMessage, fields: readonly TypedField[]): void {
  const owner = new Map<string, string>();
  for (const field of fields) {
    for (const key of field.legacyKeys) {
      const other = owner.get(key);
      if (other !== undefined) {
        throw new CatalogError(
          `${message.typeName}: legacy key ${key} is read by both ${other} and ${field.name}`,
        );
      }
      owner.set(key, field.name);
    }
  }
}

function eventKind(member: DescField): EventKind {
  const message = member.message;
  if (message === undefined) {
    throw new CatalogError(`${member.parent.typeName}.${member.name}: a kind must be a message`);
  }
  const where = message.typeName;
  if (!hasOption(message, kind_catalog)) {
    throw new CatalogError(
      `${where} (${member.parent.typeName}.${member.name}) has no (kind_catalog) option: declare its table (or none), its instruments (or no_instruments) and its labels`,
    );
  }
  const options = getOption(message, kind_catalog);
  if (options.table !== "" && !IDENTIFIER.test(options.table)) {
    throw new CatalogError(`${where}: table ${options.table} is not a plain lowercase SQL name`);
  }
  if (RESERVED_TABLES.has(options.table) || SQL_RESERVED.has(options.table)) {
    throw new CatalogError(`${where}: table ${options.table} is a name the schema or SQL reserves`);
  }
  const tableSince = Math.max(1, options.tableSince);
  let columnCount = 0;
  const fields = message.fields.map((f) =>
    typedField(
      f,
      options.table,
      tableSince,
      getOption(f, field_catalog).column ? columnCount++ : -1,
    ),
  );
  checkLegacyKeys(message, fields);
  const byName = new Map(fields.map((f) => [f.name, f]));
  for (const label of options.labels) {
    if (!byName.has(label)) {
      throw new CatalogError(`${where}: label ${label} names no typed field of ${message.name}`);
    }
  }
  if (new Set(options.labels).size !== options.labels.length) {
    throw new CatalogError(`${where}: a label is listed twice`);
  }
  const outcome = options.outcome === "" ? undefined : byName.get(options.outcome);
  if (options.outcome !== "" && outcome?.type !== "bool") {
    throw new CatalogError(
      `${where}: outcome ${options.outcome} names no bool field of ${message.name}`,
    );
  }
  const counter = options.counter ? instrument(options.counter, `${where}.counter`) : undefined;
  const histogram = options.histogram
    ? instrument(options.histogram, `${where}.histogram`)
    : undefined;
  const hasInstrument = counter !== undefined || histogram !== undefined;
  if (hasInstrument === options.noInstruments) {
    throw new CatalogError(
      hasInstrument
        ? `${where}: no_instruments is set beside a counter or histogram`
        : `${where} has no instrument decision: give it a counter or a histogram, or set no_instruments`,
    );
  }
  const valueSeconds = options.histogramSource === HistogramSource.VALUE_SECONDS;
  if (valueSeconds && !options.valueRequired) {
    throw new CatalogError(`${where}: a histogram of the value needs value_required`);
  }
  if (options.histogramSource !== HistogramSource.UNSPECIFIED && histogram === undefined) {
    throw new CatalogError(`${where}: histogram_source is set, but the kind has no histogram`);
  }
  if (options.noInstruments && fields.some((f) => f.histogramMs !== undefined)) {
    throw new CatalogError(`${where}: a field has histogram_ms on a kind with no_instruments`);
  }
  const columns = fields.filter(
    (f): f is TypedField & { readonly column: ColumnSpec } => f.column !== undefined,
  );
  if (options.table !== "" && columns.length === 0) {
    throw new CatalogError(`${where}: table ${options.table} is declared but no field is a column`);
  }
  const since = tableSince;
  for (const f of columns) {
    if (f.column.since < since) {
      throw new CatalogError(
        `${where}.${f.name}: its column_since is before its table's table_since`,
      );
    }
  }
  return {
    name: member.name,
    localName: member.localName,
    number: member.number,
    message,
    fields,
    valueRequired: options.valueRequired,
    ...(options.table !== "" ? { table: { name: options.table, since, fields: columns } } : {}),
    ...(counter ? { counter } : {}),
    ...(histogram
      ? { histogram: { ...histogram, source: valueSeconds ? "value_seconds" : "duration_ms" } }
      : {}),
    labels: options.labels,
    labelFields: options.labels.map((label) => byName.get(label) as TypedField),
    ...(outcome ? { outcome } : {}),
  };
}

/**
 * The catalog of an `Event` message's `kind` oneof: every kind with its
 * fields, table, instruments and labels, checked for contradictions (a
 * {@link CatalogError} names the first one). Exported for the tests, which
 * read broken schemas with it.
 */
export function readCatalog(event: DescMessage): readonly EventKind[] {
  const oneof = event.oneofs.find((o) => o.name === "kind");
  if (oneof === undefined) throw new CatalogError(`${event.typeName} has no oneof kind`);
  const kinds = oneof.fields.map(eventKind);
  const tables = new Map<string, string>();
  for (const kind of kinds) {
    if (kind.table === undefined) continue;
    const other = tables.get(kind.table.name);
    if (other !== undefined || kind.table.name === "metrics") {
      throw new CatalogError(
        `table ${kind.table.name} is claimed by ${other ?? "the universal table"} and ${kind.name}`,
      );
    }
    tables.set(kind.table.name, kind.name);
  }
  return kinds;
}

/**
 * Every event kind, in the legacy `MetricType` enum's order (the oneof's
 * declaration order), which the legacy validation messages list them in.
 */
export const EVENT_KINDS: readonly EventKind[] = readCatalog(EventSchema);

/** Kinds by their oneof case (`authRequest`). */
export const KIND_BY_CASE: ReadonlyMap<string, EventKind> = new Map(
  EVENT_KINDS.map((k) => [k.localName, k]),
);

/** Kinds by legacy metric type (`auth_request`). */
export const KIND_BY_TYPE: ReadonlyMap<string, EventKind> = new Map(
  EVENT_KINDS.map((k) => [k.name, k]),
);

/** The specialized tables, in the kinds' order. */
export const SPECIALIZED_TABLES: readonly SpecializedTable[] = EVENT_KINDS.flatMap((k) =>
  k.table ? [k.table] : [],
);

/** The raw tables: the universal table, then every specialized one (retention adds the rollups, src/storage/retention.ts). */
export const RAW_TABLES: readonly string[] = ["metrics", ...SPECIALIZED_TABLES.map((t) => t.name)];

/**
 * A new event of `kind`, its typed fields unset, with these dimensions and
 * metadata. Made empty by `create` and then assigned: `create` with an
 * initializer walks every field through reflection (bench/ingest/breakdown.ts:
 * a tenth of the legacy decode).
 */
export function newEvent(kind: EventKind, dimensions: JsonObject, metadata: JsonObject): Event {
  const event = create(EventSchema);
  event.dimensions = dimensions;
  event.metadata = metadata;
  event.kind = { case: kind.localName, value: create(kind.message) } as Event["kind"];
  return event;
}

/**
 * A typed field's value on a kind message, or undefined when unset (enum 0
 * counts as unset). 64-bit integers come back as numbers: the sizes and counts
 * modelled here stay far below 2^53.
 */
export function readTypedField(
  message: Readonly<Record<string, unknown>>,
  field: TypedField,
): boolean | string | number | undefined {
  const value = message[field.localName];
  if (field.type === "enum") return value === 0 ? undefined : (value as number | undefined);
  if (typeof value === "bigint") return Number(value);
  return value as boolean | string | number | undefined;
}

/** Sets a typed field on a kind message from its plain value. */
export function writeTypedField(
  message: Record<string, unknown>,
  field: TypedField,
  value: boolean | string | number,
): void {
  message[field.localName] = field.bigint ? BigInt(value as number) : value;
}

/** A typed field's value as the legacy JSON shows it (enums by their text). */
export function legacyValue(
  field: TypedField,
  value: boolean | string | number,
): boolean | string | number {
  if (field.type === "enum") return field.labels?.get(value as number) ?? value;
  return value;
}
