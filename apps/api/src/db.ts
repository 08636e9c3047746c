import { mkdirSync } from 'node:fs';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { Logger } from 'pino';
import type { ApiConfig } from './config.js';

export interface Database {
  readonly db: Db;
  /** What workers should use as DATABASE_URL to reach the same data. */
  readonly url: string;
  readonly embedded: boolean;
  close(): Promise<void>;
}

/**
 * The source of truth: PostgreSQL via `pg` when DATABASE_URL is set; otherwise an embedded PGlite
 * database (kept under PGLITE_DIR, seeded once) that this process also serves on a loopback port
 * so that workers read the same rows through `pg`.
 */
export async function openDatabase(config: ApiConfig, schema: string, logger: Logger): Promise<Database> {
  if (config.databaseUrl !== undefined) {
    const db = connectPg(config.databaseUrl, {
      onError: (e) => logger.warn({ err: e.message }, 'database pool error'),
    });
    await migrate(db, { schema });
    return { db, url: config.databaseUrl, embedded: false, close: () => db.close() };
  }
  const memory = config.pgliteDir === 'memory://';
  if (!memory) mkdirSync(config.pgliteDir, { recursive: true });
  const lite = await PGlite.create(memory ? undefined : config.pgliteDir);
  const db: Db = {
    query: async <R>(text: string, params?: unknown[]) => {
      const r = await lite.query<R>(text, params);
      return { rows: r.rows };
    },
    close: async () => {},
  };
  await migrate(db, { schema });
  const started = performance.now();
  const { inserted } = await seed(db, { schema, count: config.seedCount });
  if (inserted > 0)
    logger.info({ inserted, ms: Math.round(performance.now() - started) }, 'embedded database seeded');
  const server = new PGLiteSocketServer({
    db: lite,
    host: '127.0.0.1',
    port: config.pglitePort,
    maxConnections: 16,
  });
  await server.start();
  const address = server.getServerConn();
  const url = `postgres://postgres@${address}/postgres?sslmode=disable`;
  logger.info(
    { dir: memory ? 'memory' : config.pgliteDir, url },
    'embedded PGlite database (no DATABASE_URL)',
  );
  return {
    db,
    url,
    embedded: true,
    close: async () => {
      await server.stop();
      await lite.close();
    },
  };
}
