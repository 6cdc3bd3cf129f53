import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { SOCKET_FILES } from '../../core/socket-files.ts';

/** The server's Unix socket in `dataDir`: its name says whether it speaks TLS (see SOCKET_FILES). */
export function socketPathFor(dataDir: string, tls: boolean): string {
  return join(dataDir, tls ? SOCKET_FILES.tls : SOCKET_FILES.plain);
}

/**
 * Removes the sockets an earlier server left in `dataDir` (one killed cannot remove its own), of
 * either name: the caller holds the data directory's lock, so none is live. One of the other
 * scheme must go too, even when this server makes no socket (a data directory path too long for
 * one): a stale `server.sock` beside a live `server-http.sock` is the one local clients would pick.
 */
export async function removeStaleSockets(dataDir: string): Promise<void> {
  await Promise.all(Object.values(SOCKET_FILES).map((name) => rm(join(dataDir, name), { force: true })));
}

/** The most bytes of a socket path Linux accepts (`sun_path` holds 108, with its NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Serves `http` on a Unix socket at `path` (`socketPathFor`) too: the same app (TLS when the server
 * is), which only the data directory's owner can reach (the directory is 0700, the socket 0600). Local clients that talk
 * over it know they reach the server that owns the data directory, so the CLI may send the admin
 * token there; a loopback TCP port proves nothing (another user may have bound it first).
 * Connections are handed to `http` itself, so its connection tracking and closing cover them.
 * A socket file already at `path` is a stale one (the caller holds the data directory's lock).
 */
export async function listenOnSocket(http: Server, path: string): Promise<Server> {
  await rm(path, { force: true });
  const listener = createServer((socket) => http.emit('connection', socket));
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(path, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  try {
    await chmod(path, 0o600);
  } catch (err) {
    await closeSocket(listener, path);
    throw err;
  }
  return listener;
}

/** Stops accepting on the socket and removes its file; connections already made stay with `http`. */
export async function closeSocket(listener: Server, path: string): Promise<void> {
  await new Promise<void>((resolve) => listener.close(() => resolve()));
  await rm(path, { force: true });
}
