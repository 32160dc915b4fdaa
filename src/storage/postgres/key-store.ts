import type pg from "pg";
import {
  INSERT_KEY_COLUMNS,
  KEY_COLUMNS,
  type KeyStore,
  keyRowOf,
  newKeyValues,
  type RawKeyRow,
  storedDateTime,
} from "../key-store.js";
import { query } from "./pool.js";

/** The `api_keys` table on PostgreSQL; the same rows and semantics as SQLite's. */
export function createPgKeyStore(pool: pg.Pool): KeyStore {
  const set = async (column: string, id: number, value: unknown): Promise<void> => {
    await query(pool, `UPDATE api_keys SET ${column} = $1 WHERE id = $2`, [value, id]);
  };
  return {
    async all() {
      const result = await query<RawKeyRow>(
        pool,
        `SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY id`,
      );
      return result.rows.map(keyRowOf);
    },
    async insert(k) {
      // Replicas starting together with the same configured key: one inserts, the others find it.
      const inserted = await query<{ id: number }>(
        pool,
        `INSERT INTO api_keys (${INSERT_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (key_hash) DO NOTHING RETURNING id`,
        newKeyValues(k),
      );
      if (inserted.rows[0]) return inserted.rows[0].id;
      const existing = await query<{ id: number }>(
        pool,
        "SELECT id FROM api_keys WHERE key_hash = $1",
        [k.keyHash],
      );
      return existing.rows[0]?.id ?? 0;
    },
    setActive: (id, active) => set("is_active", id, active),
    setRateLimit: (id, rateLimit) => set("rate_limit", id, rateLimit),
    setScope: (id, scope) => set("scope", id, scope),
    setExpiresAt: (id, expiresAt) => set("expires_at", id, expiresAt),
    async recordLastUsed(uses) {
      if (uses.size === 0) return;
      const ids = [...uses.keys()];
      const times = [...uses.values()].map(storedDateTime);
      await query(
        pool,
        `UPDATE api_keys AS k SET last_used_at = u.at
         FROM unnest($1::int8[], $2::text[]) AS u(id, at)
         WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`,
        [ids, times],
      );
    },
  };
}
