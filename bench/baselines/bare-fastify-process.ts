/**
 * Baseline of the API scenario: a bare Fastify app with one route that answers a fixed JSON
 * document (a job as GET /v1/jobs/{id} shows it), no authentication, no store, no logging, in
 * its own process like the server. Speaks `lib/child-protocol.ts` (ready, close) over IPC.
 *
 *   node bench/baselines/bare-fastify-process.ts JSON
 */
import Fastify from 'fastify';
import type { ChildRequest } from '../lib/child-protocol.ts';

const body = JSON.parse(process.argv[2] ?? '{}') as unknown;
const app = Fastify({ logger: false });
app.get('/v1/jobs/:id', async () => body);
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('Expected a TCP address');
process.send?.({ type: 'ready', url: `http://127.0.0.1:${address.port}` });
process.on('message', (message: ChildRequest) => {
  if (message.type === 'close')
    void app.close().then(() => process.send?.({ type: 'closed' }, () => process.exit(0)));
});
