/**
 * The consistency checker's SQL writer (issue 16): it changes the source rows of
 * fixtures/sql-items.ts by plain SQL on its own connection — never through the cache, never a
 * `cache.delete` — and records each committed change in the checker's format (consistency.ts),
 * kind `sql`: `writes` are the versions the statement gave, `completedAt` is when COMMIT returned.
 * Only change capture can make the pods drop the old values, so `checkHistory` with an allowance
 * of the capture path's delay checks capture end to end, with the checker's own rule.
 *
 * Changes (one transaction each, one at a time): an UPDATE of one row; an UPDATE moving a row to
 * another group (its tag); an UPDATE of a whole group (a bulk change: the capture reader coalesces
 * it into one tag invalidation); a DELETE (its version recorded in item_tombs in the same
 * transaction) and an INSERT bringing the row back; and a transaction that UPDATEs a row and
 * rolls back, whose version must never be read (`rolledBack`).
 */
import pg from 'pg';
import { hrNow, type InvalidationOp } from './consistency.js';
import { seededRandom } from './helpers/index.js';

export const SQL_CHANGES = ['update', 'move', 'group', 'delete', 'insert', 'rollback'] as const;
export type SqlChange = (typeof SQL_CHANGES)[number];

export interface SqlWriterOptions {
  readonly url: string;
  readonly schema: string;
  /** The ids and groups createItems made (`k<i>` in group i % groups). */
  readonly ids: number;
  readonly groups: number;
  readonly durationMs: number;
  /** Pause between two changes, ms (a random 0..pauseMs): the pods read in between. */
  readonly pauseMs?: number;
  readonly seed?: number;
}

export interface SqlWriterRun {
  /** Committed changes, in the checker's format. */
  readonly ops: InvalidationOp[];
  /** Versions written by transactions that rolled back: no read may return one. */
  readonly rolledBack: Set<number>;
  readonly counts: Record<SqlChange, number>;
}

const WEIGHTS: readonly [SqlChange, number][] = [
  ['update', 40],
  ['move', 15],
  ['group', 8],
  ['delete', 10],
  ['insert', 10],
  ['rollback', 10],
];

export async function runSqlWriter(o: SqlWriterOptions): Promise<SqlWriterRun> {
  const random = seededRandom(o.seed ?? 1);
  const pick = (n: number) => Math.floor(random() * n);
  const s = `"${o.schema}"`;
  const next = `nextval('${s}.versions')`;
  const client = new pg.Client(o.url);
  await client.connect();
  const ops: InvalidationOp[] = [];
  const rolledBack = new Set<number>();
  const counts = Object.fromEntries(SQL_CHANGES.map((c) => [c, 0])) as Record<SqlChange, number>;
  const deleted = new Set<string>();
  const total = WEIGHTS.reduce((n, [, w]) => n + w, 0);
  const draw = (): SqlChange => {
    let x = random() * total;
    for (const [c, w] of WEIGHTS) {
      x -= w;
      if (x < 0) return c;
    }
    return 'update';
  };
  type Written = { id: string; v: string }[];
  const tx = async (scope: string, run: () => Promise<Written>) => {
    const invokedAt = hrNow();
    await client.query('BEGIN');
    const rows = await run();
    await client.query('COMMIT');
    const writes = rows.map((r): [string, number] => [r.id, Number(r.v)]);
    ops.push({ kind: 'sql', worker: 'sql', scope, writes, invokedAt, completedAt: hrNow(), ok: true });
  };
  const q = async (text: string, values: unknown[]) =>
    (await client.query<Written[number]>(text, values)).rows;
  const deadline = hrNow() + o.durationMs;
  try {
    while (hrNow() < deadline) {
      const id = `k${pick(o.ids)}`;
      const group = pick(o.groups);
      let change = draw();
      // A deleted row can only come back; an insert needs a deleted row.
      if (deleted.has(id)) change = 'insert';
      else if (change === 'insert') change = 'update';
      switch (change) {
        case 'update':
          await tx(`UPDATE ${id}`, () =>
            q(`UPDATE ${s}.items SET v = ${next} WHERE id = $1 RETURNING id, v::text`, [id]),
          );
          break;
        case 'move':
          await tx(`UPDATE ${id} to g${group}`, () =>
            q(`UPDATE ${s}.items SET v = ${next}, grp = $2 WHERE id = $1 RETURNING id, v::text`, [id, group]),
          );
          break;
        case 'group':
          await tx(`UPDATE g${group}`, () =>
            q(`UPDATE ${s}.items SET v = ${next} WHERE grp = $1 RETURNING id, v::text`, [group]),
          );
          break;
        case 'delete':
          await tx(`DELETE ${id}`, async () => {
            await q(`DELETE FROM ${s}.items WHERE id = $1`, [id]);
            return q(
              `INSERT INTO ${s}.item_tombs (id, v) VALUES ($1, ${next})
               ON CONFLICT (id) DO UPDATE SET v = excluded.v RETURNING id, v::text`,
              [id],
            );
          });
          deleted.add(id);
          break;
        case 'insert':
          await tx(`INSERT ${id} in g${group}`, () =>
            q(`INSERT INTO ${s}.items (id, v, grp) VALUES ($1, ${next}, $2) RETURNING id, v::text`, [
              id,
              group,
            ]),
          );
          deleted.delete(id);
          break;
        case 'rollback': {
          await client.query('BEGIN');
          const rows = await q(`UPDATE ${s}.items SET v = ${next} WHERE id = $1 RETURNING id, v::text`, [id]);
          await client.query('ROLLBACK');
          for (const r of rows) rolledBack.add(Number(r.v));
          break;
        }
      }
      counts[change]++;
      await new Promise((resolve) => setTimeout(resolve, random() * (o.pauseMs ?? 20)));
    }
  } finally {
    await client.end();
  }
  return { ops, rolledBack, counts };
}
