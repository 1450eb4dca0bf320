/**
 * A TCP proxy between a pool and the PostgreSQL server that can drop a connection at a chosen
 * point, for the ambiguous-commit cases: before the server sees a statement (it never ran), or
 * right after the server answered it (it committed, the client never hears so).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type Cut = { when: 'request' | 'response'; match: string } | null;

export interface Proxy {
  port: number;
  /** Arms a cut: the next connection whose traffic matches drops there (once). */
  arm(cut: Cut): void;
  /** Settles when an armed cut has happened. */
  cutDone(): Promise<void>;
  /** The database goes away: every connection is dropped and new ones are refused. */
  cutAll(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }): Promise<Proxy> {
  let cut: Cut = null;
  let done: () => void = () => undefined;
  let happened = new Promise<void>((r) => (done = r));
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      cut = null;
      client.destroy();
      upstream.destroy();
      done();
    };
    let responseArmed = false;
    let pending = Buffer.alloc(0);
    /** True once the server's bytes since the request hold a ReadyForQuery ('Z'): the statement's implicit transaction has committed. */
    const readyForQuery = (chunk: Buffer): boolean => {
      pending = Buffer.concat([pending, chunk]);
      let at = 0;
      while (pending.length - at >= 5) {
        const type = pending[at]!;
        const len = pending.readInt32BE(at + 1);
        if (type === 0x5a) return true;
        at += 1 + len;
      }
      return false;
    };
    client.on('data', (chunk: Buffer) => {
      if (cut && chunk.includes(cut.match)) {
        if (cut.when === 'request') return drop();
        responseArmed = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      // The reply to the matched statement, which the server sends once it has committed it.
      if (responseArmed && readyForQuery(chunk)) return drop();
      client.write(chunk);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    arm(c) {
      cut = c;
      happened = new Promise<void>((r) => (done = r));
    },
    cutDone: () => happened,
    cutAll: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
