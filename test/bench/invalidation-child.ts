/**
 * One receiver process of the invalidation bench. It holds a plain ioredis subscriber (the floor)
 * and a pod: one tiered cache on the shared prefix. It notes when each floor message arrived and
 * when its `onEvent` listener ran, i.e. after an invalidation was applied to its L1, on a clock
 * comparable across processes of one machine: `performance.timeOrigin + performance.now()`.
 * The parent sends to one or the other in turn, never both at once.
 *
 * argv: <redisPort> <floor channel> <cache prefix> <count>
 * stdout protocol: one JSON line `{"ready":true}` once subscribed and once the pod's L1 holds every
 * id that will be invalidated (`podError` set if the cache could not start: the floor still runs),
 * then one JSON line `{"sub":[…],"pod":[…]}` (index = sequence number, null = never received) as
 * soon as everything arrived, or at once when the parent writes "report" on stdin. Closing stdin
 * closes the clients; the process then exits by itself.
 */
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { errorMessage, itemDefinition } from './data.js';
import { fleetIdOf, idOf, type ReceiverReady, type ReceiverReport, seqOf } from './workloads/invalidation.js';

const now = (): number => performance.timeOrigin + performance.now();
const PREFILL_BATCH = 500;

type OnReceipt = (seq: number, at: number) => void;

interface Receiver {
  close(): Promise<void>;
}

async function subscriber(port: number, channel: string, record: OnReceipt): Promise<Receiver> {
  const sub = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  await sub.connect();
  sub.on('message', (ch: string, message: string) => {
    const at = now();
    if (ch === channel) record(seqOf(message), at);
  });
  await sub.subscribe(channel);
  return {
    async close() {
      await sub.quit();
    },
  };
}

async function pod(
  port: number,
  prefix: string,
  count: number,
  record: OnReceipt,
  recordFleet: OnReceipt,
): Promise<Receiver> {
  const { createCache, defineNamespace } = await import('@cachefleet/tiered-cache');
  const items = defineNamespace(itemDefinition());
  const cache = createCache({
    impl: 'tiered',
    redis: { mode: 'single', url: `redis://127.0.0.1:${port}` },
    prefix,
    l1: { maxEntries: 200_000 },
  });
  await cache.start();
  try {
    if (cache.bus?.connected !== true) throw new Error('the cache is not on the bus');
    // Each invalidation then removes a real L1 entry, as in production.
    const ids = Array.from({ length: count }, (_, i) => [idOf(i), fleetIdOf(i)]).flat();
    for (let i = 0; i < ids.length; i += PREFILL_BATCH) {
      const r = await cache.getMany(items, ids.slice(i, i + PREFILL_BATCH));
      if (!r.ok) throw r.error;
    }
  } catch (err) {
    await cache.close();
    throw err;
  }
  cache.onEvent((event) => {
    const at = now();
    if (event.event_type !== 'invalidate' || event.keys === undefined) return;
    for (const id of event.keys) (id.startsWith('f-') ? recordFleet : record)(seqOf(id), at);
  });
  return { close: () => cache.close() };
}

/** Times per sequence number; `complete` once every one arrived. */
class Log {
  readonly times: Float64Array;
  received = 0;
  constructor(readonly count: number) {
    this.times = new Float64Array(count).fill(Number.NaN);
  }

  /** The first delivery counts; a replayed duplicate would only hide a slow one. */
  record(seq: number, at: number): void {
    if (!(seq >= 0 && seq < this.count) || !Number.isNaN(this.times[seq] ?? 0)) return;
    this.times[seq] = at;
    this.received++;
  }

  get complete(): boolean {
    return this.received === this.count;
  }

  toJSON(): (number | null)[] {
    return Array.from(this.times, (t) => (Number.isNaN(t) ? null : t));
  }
}

async function main(): Promise<void> {
  const [portArg = '', channel = '', prefix = '', countArg = ''] = process.argv.slice(2);
  const port = Number(portArg);
  const count = Number(countArg);
  if (!Number.isInteger(port) || channel === '' || prefix === '' || !(count > 0)) {
    throw new Error(
      `usage: invalidation-child <port> <channel> <prefix> <count>, got ${process.argv.slice(2).join(' ')}`,
    );
  }
  const subLog = new Log(count);
  const podLog = new Log(count);
  const fleetLog = new Log(count);
  let podError: string | undefined;
  let reported = false;
  const report = (): void => {
    if (reported) return;
    reported = true;
    const out: ReceiverReport = { sub: subLog.toJSON(), pod: podLog.toJSON(), fleet: fleetLog.toJSON() };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  };
  const whenDone = (): void => {
    if (subLog.complete && ((podLog.complete && fleetLog.complete) || podError !== undefined)) report();
  };
  const receivers: Receiver[] = [];
  try {
    receivers.push(
      await subscriber(port, channel, (seq, at) => {
        subLog.record(seq, at);
        whenDone();
      }),
    );
    try {
      receivers.push(
        await pod(
          port,
          prefix,
          count,
          (seq, at) => {
            podLog.record(seq, at);
            whenDone();
          },
          (seq, at) => {
            fleetLog.record(seq, at);
            whenDone();
          },
        ),
      );
    } catch (err) {
      podError = errorMessage(err);
    }
    const lines = createInterface({ input: process.stdin });
    const ready: ReceiverReady = { ready: true, ...(podError === undefined ? {} : { podError }) };
    process.stdout.write(`${JSON.stringify(ready)}\n`);
    for await (const line of lines) if (line.trim() === 'report') report();
    // stdin closed: the parent is done with this receiver.
  } finally {
    process.stdin.destroy();
    for (const r of receivers) await r.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`invalidation-child: ${errorMessage(err)}\n`);
  process.exitCode = 1;
});
