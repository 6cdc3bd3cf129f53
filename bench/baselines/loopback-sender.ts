/**
 * Baseline of the catch-up scenario: what loopback TCP carries on this machine for a plain Node
 * server. A bare `node:net` server, in its own process like jobworker's, holds a file's bytes in
 * memory and answers every connection, once its request head has arrived, with a plain HTTP/1.1
 * 200 of exactly those bytes (Content-Length, then the connection closes): no file is read, no
 * chunk framed and nothing checked. It is not a hard ceiling: a server that has the kernel copy
 * from the page cache (sendfile, as jobworker does over plain HTTP) skips one copy and may do
 * somewhat better. On the machine of docs/performance.md `iperf3 -Z` (sendfile, C at both ends)
 * carried about as much (2.45 GB/s against this sender's 2.50 GB/s). Speaks
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
    socket.cork();
    socket.write(head);
    socket.end(body);
    socket.uncork();
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
