/**
 * The jobworker server as its own process, so that its RSS and CPU can be read from /proc apart
 * from the load generator's. Started by `bench/lib/server-handle.ts` over an IPC channel:
 *
 *   node --expose-gc bench/server-process.ts DATA_DIR LOG_LEVEL
 *
 * It answers `{type: 'ready', url, adminTokenFile}`, then obeys `{type: 'gc'}` (answers
 * `{type: 'gc:done'}`) and `{type: 'close'}` (closes the server, answers `{type: 'closed'}`, exits).
 */
import { runServer } from '../src/main.ts';
import type { ChildRequest } from './lib/child-protocol.ts';

const [dataDir, logLevel = 'info'] = process.argv.slice(2);
if (dataDir === undefined) throw new Error('Expected a data directory as the first argument');

// Plain HTTP on loopback: the benchmarks measure the server's own work against baselines that
// speak plain HTTP (bench/baselines/), so TLS would only add a constant cost to both sides' gap.
const server = await runServer({ listen: '127.0.0.1:0', dataDir, logLevel, insecureHttp: true });
process.send?.({ type: 'ready', url: server.url, adminTokenFile: server.adminTokenFile });

process.on('message', (message: ChildRequest) => {
  if (message.type === 'gc') {
    globalThis.gc?.();
    process.send?.({ type: 'gc:done' });
  } else if (message.type === 'close') {
    server.close().then(
      () => process.send?.({ type: 'closed' }, () => process.exit(0)),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
});
