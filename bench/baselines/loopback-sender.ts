/**
 * Baseline of the catch-up scenario: what loopback TCP itself carries on this machine. A bare
 * `node:net` server, in its own process like jobworker's, holds a file's bytes in memory and
 * answers every connection, once its request head has arrived, with a plain HTTP/1.1 200 of
 * exactly those bytes (Content-Length, then the connection closes). No file is read, no chunk is
 * framed and nothing is checked: no HTTP server sending these bytes over TCP can do better, so
 * jobworker's catch-up read is judged against it as well as against `cat`. Speaks
 * `lib/child-protocol.ts` (ready, close) over IPC.
 *
 *   node bench/baselines/loopback-sender.ts FILE
 */
import { readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { ChildRequest } from '../lib/child-protocol.ts';

const file = process.argv[2];
if (file === undefined) throw new Error('Expected the file to send as the first argument');
const body = readFileSync(file);
const head = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);

function answerOnceAsked(socket: Socket): void {
  let asked = '';
  let answered = false;
  socket.on('error', () => socket.destroy());
  socket.on('data', (piece: Buffer) => {
    if (answered) return;
    asked += piece.toString('latin1');
    if (!asked.includes('\r\n\r\n')) return;
    answered = true;
    socket.write(head);
    socket.end(body);
  });
}

const server = createServer(answerOnceAsked);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('Expected a TCP address');
  process.send?.({ type: 'ready', url: `http://127.0.0.1:${address.port}` });
});
process.on('message', (message: ChildRequest) => {
  if (message.type === 'close') server.close(() => process.send?.({ type: 'closed' }, () => process.exit(0)));
});
