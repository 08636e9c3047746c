import { randomBytes } from 'node:crypto';
import { type CacheKeys, defineScripts, loadScripts, type RedisClient } from '@cachefleet/redis';
import { z } from 'zod';

interface LeaseCommands {
  captureAcquire(lease: string, position: string, token: string, ms: number): Promise<number>;
  captureCommit(
    lease: string,
    position: string,
    held: string,
    ms: number,
    position_: string,
  ): Promise<number>;
  captureRelease(lease: string, held: string): Promise<number>;
}

const SCRIPTS = loadScripts<LeaseCommands>(new URL('./scripts/', import.meta.url), {
  captureAcquire: 'capture-acquire-2',
  captureCommit: 'capture-commit-2',
  captureRelease: 'capture-release-1',
});

/** What `__{capture}:position` holds: written by the active reader after each applied turn. */
export const capturePositionSchema = z.object({
  /** Highest outbox position applied (0 before the first). */
  pos: z.number().int().nonnegative().default(0),
  /** Fencing number of the last holder: every new holder takes the next one. */
  fence: z.number().int().nonnegative().default(0),
  /** When it was written, ms since the epoch (the reader's clock). */
  at: z.number().int().nonnegative().optional(),
  /** Lag measured at that turn, seconds: age of the oldest outbox row then still unapplied. */
  lag: z.number().nonnegative().optional(),
  /** Who wrote it. */
  holder: z.string().optional(),
});
export type CapturePosition = z.infer<typeof capturePositionSchema>;

/** Reads the capture state (anyone: status, tests); undefined when no reader ever ran. */
export async function readCaptureState(
  client: RedisClient,
  keys: CacheKeys,
): Promise<{ position: CapturePosition | undefined; holder: string | undefined; fence: number | undefined }> {
  const [lease, raw] = await Promise.all([client.get(keys.captureLease), client.get(keys.capturePosition)]);
  let position: CapturePosition | undefined;
  if (raw !== null) {
    try {
      const parsed = capturePositionSchema.safeParse(JSON.parse(raw));
      if (parsed.success) position = parsed.data;
    } catch {
      // not JSON: reported as absent
    }
  }
  const m = lease === null ? null : /^(\d+):(.*)$/.exec(lease);
  return { position, holder: m?.[2], fence: m ? Number(m[1]) : undefined };
}

/**
 * The lease of the one active capture reader, with a fencing number: `acquire` takes or keeps it;
 * `commit` renews it and writes the position only while it is still this holder's (one script).
 */
export class CaptureLease {
  readonly token: string;
  readonly #client: LeaseCommands;
  readonly #keys: CacheKeys;
  readonly #ms: number;
  #fence = 0;

  constructor(client: RedisClient, keys: CacheKeys, ms: number, holder: string) {
    this.#client = defineScripts(client, SCRIPTS);
    this.#keys = keys;
    this.#ms = ms;
    this.token = `${holder}:${randomBytes(4).toString('hex')}`;
  }

  /** The fencing number held (0: not held). */
  get fence(): number {
    return this.#fence;
  }

  get #held(): string {
    return `${this.#fence}:${this.token}`;
  }

  /** Takes the lease if free (or renews it if held); resolves the fencing number, 0 if another holds it. */
  async acquire(): Promise<number> {
    const fence = await this.#client.captureAcquire(
      this.#keys.captureLease,
      this.#keys.capturePosition,
      this.token,
      this.#ms,
    );
    this.#fence = Number(fence);
    return this.#fence;
  }

  /** Renews, and records `position` if given; false (and not held any more) if the lease was lost. */
  async commit(position?: Omit<CapturePosition, 'fence'>): Promise<boolean> {
    if (this.#fence === 0) return false;
    const body = position === undefined ? '' : JSON.stringify({ ...position, fence: this.#fence });
    const ok = await this.#client.captureCommit(
      this.#keys.captureLease,
      this.#keys.capturePosition,
      this.#held,
      this.#ms,
      body,
    );
    if (Number(ok) !== 1) this.#fence = 0;
    return this.#fence !== 0;
  }

  /** Stops counting the lease as held (it could not be renewed in time): nothing is sent. */
  forget(): void {
    this.#fence = 0;
  }

  async release(): Promise<void> {
    if (this.#fence === 0) return;
    const held = this.#held;
    this.#fence = 0;
    await this.#client.captureRelease(this.#keys.captureLease, held);
  }
}
