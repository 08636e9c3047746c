import pg from 'pg';

/**
 * The little the catalogue needs from a database: parameterised queries and a way to let go.
 * Small on purpose, so that an embedded PGlite database can implement it as well as a `pg.Pool`.
 * Queries return only plain JSON types (the SQL casts ids and timestamps to text), so the driver's
 * own type parsing never leaks into values.
 */
export interface Db {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  close(): Promise<void>;
}

export interface PgOptions {
  /** Connections at most; a worker runs a few batches at a time, an API pod a few loads. Default 4. */
  readonly max?: number;
  /**
   * Called with errors of idle connections (the server restarted, the network dropped). The pool
   * has already discarded that connection and the next query opens a new one. Default: a process
   * warning, so that it is seen; never an uncaught exception.
   */
  readonly onError?: (error: Error) => void;
}

function warn(error: Error): void {
  process.emitWarning(`idle PostgreSQL connection failed: ${error.message}`, {
    type: 'CatalogueWarning',
    code: 'CATALOGUE_PG_IDLE_ERROR',
  });
}

/** A `Db` over a small `pg.Pool`. No I/O until the first query. */
export function connectPg(url: string, options: PgOptions = {}): Db {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 4,
    application_name: 'cachefleet',
    // Fail a query fast when the server cannot be reached instead of waiting on the OS TCP timeout.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 10_000,
  });
  // Without a listener an idle client's error is re-emitted as 'error' and kills the process.
  pool.on('error', options.onError ?? warn);
  let closing: Promise<void> | undefined;
  return {
    async query<R>(text: string, params?: unknown[]) {
      const result = await pool.query(text, params);
      return { rows: result.rows as R[] };
    },
    close() {
      // pg.Pool#end rejects when called twice; close is idempotent here.
      closing ??= pool.end();
      return closing;
    },
  };
}
