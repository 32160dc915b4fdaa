import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { openStorage } from "../../src/storage/drivers.js";
import { freshPgSchema, pgTestDb } from "../support/database.js";

describe("PostgreSQL's tables checked against the event catalog at start", () => {
  let schema: { url: string; drop(): Promise<void> };
  beforeEach(async () => {
    schema = await freshPgSchema();
  });
  afterEach(async () => {
    await schema.drop();
  });

  it("should refuse to start on tables that disagree with the catalog, naming each column", async () => {
    const config = loadConfig({ DATABASE_URL: schema.url });
    await (await openStorage(config)).close();
    const db = pgTestDb(schema.url);
    await db.run("ALTER TABLE auth_metrics ADD COLUMN stray TEXT");
    await db.run("ALTER TABLE tool_metrics DROP COLUMN client_version");
    await db.run("ALTER TABLE discovery_metrics ALTER COLUMN results_count TYPE TEXT");
    await db.close();
    const opened = openStorage(config);
    await expect(opened).rejects.toThrow(
      /auth_metrics\.stray: the column has no source in the event catalog/,
    );
    await expect(opened).rejects.toThrow(
      /tool_metrics\.client_version: the catalog stores typed field client_version there, but the table has no such column/,
    );
    await expect(opened).rejects.toThrow(
      /discovery_metrics\.results_count: the table says text, the catalog integer/,
    );
  });
});
