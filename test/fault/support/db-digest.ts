/**
 * "Nothing stored changed", checked at the source: a digest of every row of every table of
 * the service's SQLite file, read through a separate read-only connection (WAL lets it
 * read while the service writes). Two equal digests mean no write committed in between,
 * whether or not the API would show it (events, mailboxes, cards, config, outputs).
 */
import { createHash } from "node:crypto";
import path from "node:path";
import Database from "better-sqlite3";

export interface StoreDigest {
  digest(): string;
  /** Row counts per table, for messages. */
  counts(): Record<string, number>;
  close(): void;
}

export function openStoreDigest(dataDir: string): StoreDigest {
  const db = new Database(path.join(dataDir, "agentorch.db"), { readonly: true, fileMustExist: true });
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
  const readAll = db.transaction(() => tables.map((t) => [t, db.prepare(`SELECT * FROM "${t}" ORDER BY rowid`).raw().all()] as const));
  return {
    digest() {
      const h = createHash("sha256");
      for (const [t, rows] of readAll()) {
        h.update(t);
        for (const row of rows) h.update(JSON.stringify(row, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString("base64") : typeof v === "bigint" ? v.toString() : v)));
      }
      return h.digest("hex");
    },
    counts() {
      return Object.fromEntries(readAll().map(([t, rows]) => [t, rows.length]));
    },
    close() {
      db.close();
    },
  };
}
