import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
/** The engine's API, for `vite` in development (`npx vite console`): the console calls it on the same origin. */
const engine = process.env['MILLRACE_URL'] ?? 'http://127.0.0.1:8080';
const api = ['/status', '/topologies', '/topics', '/metrics', '/models', '/projections', '/replays', '/dead-letters', '/audit', '/lineage', '/health', '/console/config.json'];

export default defineConfig({
  root,
  base: '/console/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  resolve: { alias: { react: 'preact/compat', 'react-dom': 'preact/compat' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    reportCompressedSize: false,
  },
  server: { proxy: Object.fromEntries(api.map((path) => [path, engine])) },
});
