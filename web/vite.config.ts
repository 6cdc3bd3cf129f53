// The dashboard's build (docs/dashboard.md): web/ -> dist/web, served by the server at `/`.
// Every asset is a file of its own (no inline script, no data: URIs), so the page runs under the
// server's strict Content-Security-Policy; nothing is fetched from a CDN.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});
