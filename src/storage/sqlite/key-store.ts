import type { Database } from "better-sqlite3";
import {
  INSERT_KEY_COLUMNS,
  KEY_COLUMNS,
  type KeyStore,
  keyRowOf,
  newKeyValues,
  type RawKeyRow,
  storedDateTime,
} from "../key-store.js";
/** Creates the key store over an open SQLite database. */
export function createKeyStore(db: Database): KeyStore {
  const selectAll = db.prepare<[], RawKeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY id`);
  const insert = db.prepare(
    `INSERT INTO api_keys (${INSERT_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (key_hash) DO NOTHING`,
  );
  const idOfHash = db.prepare<[string], { id: number }>(
    "SELECT id FROM api_keys WHERE key_hash = ?",
  );
  const setActive = db.prepare("UPDATE api_keys SET is_active = ? WHERE id = ?");
  const setRateLimit = db.prepare("UPDATE api_keys SET rate_limit = ? WHERE id = ?");
  const setScope = db.prepare("UPDATE api_keys SET scope = ? WHERE id = ?");
  const setExpiresAt = db.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?");
  const touch = db.prepare(
    `UPDATE api_keys SET last_used_at = ?
     WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
  );
  const recordLastUsed = db.transaction((uses: ReadonlyMap<number, Date>) => {
    for (const [id, at] of uses) {
      const text = storedDateTime(at);
      touch.run(text, id, text);
    }
  });

  return {
    all: async () => selectAll.all().map(keyRowOf),
    insert: async (k) => {
      const result = insert.run(...newKeyValues(k));
      if (result.changes > 0) return Number(result.lastInsertRowid);
      return idOfHash.get(k.keyHash)?.id ?? 0;
    },
    setActive: async (id, active) => {
      setActive.run(active ? 1 : 0, id);
    },
    setRateLimit: async (id, rateLimit) => {
      setRateLimit.run(rateLimit, id);
    },
    setScope: async (id, scope) => {
      setScope.run(scope, id);
    },
    setExpiresAt: async (id, expiresAt) => {
      setExpiresAt.run(expiresAt, id);
    },
    recordLastUsed: async (uses) => {
      if (uses.size > 0) recordLastUsed.immediate(uses);
    },
  };
}
