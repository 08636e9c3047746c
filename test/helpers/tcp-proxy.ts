/**
 * A TCP proxy on a loopback port in front of a real server (PostgreSQL in the grace tests) that a
 * test can stop and start again on the same port: stopped, connections are refused and the live
 * ones cut, which is what a client sees when its database goes down.
 *
 *   const proxy = await startTcpProxy('127.0.0.1', 5432);   // connect to proxy.port instead
 *   await proxy.stop();   // the database is "down"
 *   await proxy.start();  // and back
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far (each one a new client connection). */
  readonly accepted: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** `listenHost`: where the proxy listens (a veth address for a network namespace, test/helpers/netns.ts). */
export async function startTcpProxy(
  targetHost: string,
  targetPort: number,
  listenHost = '127.0.0.1',
): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let server: Server | undefined;
  let port = 0;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const srv = createServer((client) => {
        accepted++;
        const upstream = connect(targetPort, targetHost);
        track(client);
        track(upstream);
        client.pipe(upstream);
        upstream.pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      srv.once('error', reject);
      srv.listen(port, listenHost, () => {
        const addr = srv.address();
        if (addr !== null && typeof addr !== 'string') port = addr.port;
        server = srv;
        resolve();
      });
    });
  await listen();
  return {
    get port() {
      return port;
    },
    get accepted() {
      return accepted;
    },
    stop: async () => {
      const srv = server;
      server = undefined;
      for (const s of sockets) s.destroy();
      if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
    start: async () => {
      if (server === undefined) await listen();
    },
  };
}
