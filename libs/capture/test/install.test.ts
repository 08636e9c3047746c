/** The outbox and its triggers on real PostgreSQL and on PGlite (through its socket server, as `npm start` shares it). */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connectPg, createCatalogue, type Db, migrate, seed } from '@cachefleet/catalogue';
import { testDatabaseUrl, waitUntil } from '@cachefleet/test';
import { defineNamespace } from '@cachefleet/tiered-cache';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CaptureError, captureChannel, captureSql, installCapture } from '../src/index.js';

interface Outbox {
  ns: string;
  tbl: string;
  op: string;
  rows: { id: string; category: string }[];
}

const byId = (a: { id: string }, b: { id: string }) => Number(a.id) - Number(b.id);

/** The same scenario on either database: raw SQL on a connection of its own, as another service would. */
function scenario(
  name: string,
  open: () => Promise<{ url: string; close(): Promise<void> }>,
  notifies: boolean,
) {
  describe(name, () => {
    const schema = `cap_t_${randomBytes(4).toString('hex')}`;
    const captureSchema = `cap_o_${randomBytes(4).toString('hex')}`;
    let server: { url: string; close(): Promise<void> };
    let db: Db;
    let writer: pg.Client;
    let listener: pg.Client;
    const notes: string[] = [];

    beforeAll(async () => {
      server = await open();
      db = connectPg(server.url, { max: 1 });
      await migrate(db, { schema });
      await seed(db, { schema, count: 50 });
      const { namespaces } = createCatalogue({ db, schema });
      const conn = new pg.Client(server.url);
      await conn.connect();
      // Twice: the script is idempotent (triggers replaced, not doubled).
      await installCapture(conn, namespaces, { schema: captureSchema });
      expect(await installCapture(conn, namespaces, { schema: captureSchema })).toEqual({
        tables: [`product <- ${schema}.products`],
      });
      await conn.end();
      writer = new pg.Client(server.url);
      await writer.connect();
      listener = new pg.Client(server.url);
      await listener.connect();
      listener.on('notification', (n) => notes.push(n.channel));
      await listener.query(`LISTEN "${captureChannel(captureSchema)}"`);
    });

    afterAll(async () => {
      await listener?.end();
      await writer?.end();
      await db?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await db?.query(`DROP SCHEMA IF EXISTS "${captureSchema}" CASCADE`);
      await db?.close();
      await server?.close();
    });

    const drain = async (): Promise<Outbox[]> => {
      const { rows } = await writer.query<Outbox>(
        `DELETE FROM "${captureSchema}".capture_outbox RETURNING ns, tbl, op, rows`,
      );
      for (const r of rows) r.rows.sort(byId);
      return rows;
    };
    const t = `"${schema}".products`;

    it('captures INSERT, UPDATE (old and new row), DELETE and TRUNCATE, one outbox row per statement', async () => {
      await drain();
      await writer.query(
        `INSERT INTO ${t} (id, sku, name, category, price_cents, stock) VALUES (1001, 'X-1001', 'n', 'cat-a', 1, 1)`,
      );
      await writer.query(`UPDATE ${t} SET category = 'cat-b' WHERE id = 1001`);
      await writer.query(`UPDATE ${t} SET price_cents = 5 WHERE id IN (1, 2)`);
      await writer.query(`DELETE FROM ${t} WHERE id = 1001`);
      await writer.query(`UPDATE ${t} SET stock = 0 WHERE id = -1`); // no row: no outbox row
      const tbl = `${schema}.products`;
      expect(await drain()).toEqual([
        { ns: 'product', tbl, op: 'I', rows: [{ id: '1001', category: 'cat-a' }] },
        {
          ns: 'product',
          tbl,
          op: 'U',
          rows: expect.arrayContaining([
            { id: '1001', category: 'cat-a' },
            { id: '1001', category: 'cat-b' },
          ]),
        },
        // Unchanged captured columns: old and new images are one (DISTINCT).
        {
          ns: 'product',
          tbl,
          op: 'U',
          rows: [
            { id: '1', category: 'cat-1' },
            { id: '2', category: 'cat-2' },
          ],
        },
        { ns: 'product', tbl, op: 'D', rows: [{ id: '1001', category: 'cat-b' }] },
      ]);
      if (notifies) await waitUntil('a notification', async () => (notes.length > 0 ? true : undefined));
    });

    it('a rolled-back write leaves nothing, a committed transaction all of its statements', async () => {
      await drain();
      notes.length = 0;
      await writer.query('BEGIN');
      await writer.query(`UPDATE ${t} SET category = 'cat-x' WHERE id = 3`);
      await writer.query(`DELETE FROM ${t} WHERE id = 4`);
      await writer.query('ROLLBACK');
      expect(await drain()).toEqual([]);
      await writer.query('BEGIN');
      await writer.query(`UPDATE ${t} SET category = 'cat-y' WHERE id = 5`);
      // Not visible before COMMIT to another connection (the reader's). PGlite is one session: its
      // socket server holds other connections' queries until the transaction ends, so not asked there.
      if (notifies)
        expect((await db.query(`SELECT 1 FROM "${captureSchema}".capture_outbox`)).rows).toEqual([]);
      await writer.query(`UPDATE ${t} SET category = 'cat-z' WHERE id = 5`);
      await writer.query('COMMIT');
      expect((await drain()).map((r) => r.rows)).toEqual([
        [
          { id: '5', category: 'cat-5' },
          { id: '5', category: 'cat-y' },
        ],
        [
          { id: '5', category: 'cat-y' },
          { id: '5', category: 'cat-z' },
        ],
      ]);
      if (notifies) {
        await waitUntil('a notification', async () => (notes.length > 0 ? true : undefined));
        // One per transaction (PostgreSQL folds identical notifications), none for the rollback.
        expect(notes).toEqual([captureChannel(captureSchema)]);
      }
    });

    it('a bulk UPDATE of many rows is one outbox row; TRUNCATE is captured as such', async () => {
      await drain();
      await writer.query(`UPDATE ${t} SET stock = stock + 1 WHERE category = 'cat-7'`);
      const [bulk] = await drain();
      expect(bulk?.rows.map((r) => r.id)).toEqual(['7', '27', '47']);
      await writer.query(`TRUNCATE ${t}`);
      expect(await drain()).toEqual([{ ns: 'product', tbl: `${schema}.products`, op: 'T', rows: [] }]);
    });
  });
}

scenario('PostgreSQL', async () => ({ url: testDatabaseUrl(), close: async () => {} }), true);

// PGlite runs the same plpgsql and statement triggers. Its socket server does not forward
// notifications to other connections (the reader polls there), so they are not asserted.
scenario(
  'PGlite (socket server)',
  async () => {
    const lite = await PGlite.create();
    const socket = new PGLiteSocketServer({ db: lite, host: '127.0.0.1', port: 0, maxConnections: 8 });
    await socket.start();
    return {
      url: `postgres://postgres@${socket.getServerConn()}/postgres?sslmode=disable`,
      close: async () => {
        await socket.stop();
        await lite.close();
      },
    };
  },
  false,
);

describe('captureSql', () => {
  it('the migration file shipped for teams that manage their own schema is what the code generates', () => {
    const db = connectPg('postgres://nobody@127.0.0.1:1/none');
    const file = readFileSync(new URL('../../catalogue/sql/capture.sql', import.meta.url), 'utf8');
    expect(file).toBe(captureSql(createCatalogue({ db }).namespaces));
    void db.close();
  });

  it('refuses definitions without sources, and a bad schema name', () => {
    const plain = defineNamespace({
      name: 'plain',
      version: 1,
      ttl: { l1: 1, l2: 1 },
      schema: z.string(),
      load: async () => undefined,
    });
    expect(() => captureSql([plain])).toThrow(CaptureError);
    expect(() => captureSql([plain])).toThrow(/declares `sources`/);
    const db = connectPg('postgres://nobody@127.0.0.1:1/none');
    expect(() => captureSql(createCatalogue({ db }).namespaces, { schema: 'Bad;drop' })).toThrow(
      /capture schema/,
    );
    void db.close();
  });
});
