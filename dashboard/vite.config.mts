import preact from '@preact/preset-vite';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The dashboard is served by the API process under /dashboard/ (src/dashboard/routes.ts), which builds
 * it into dist/dashboard through this file. `npx vite dashboard` serves it with live reload for front-end
 * work, forwarding /api to a running service (DASHBOARD_API, default http://127.0.0.1:8080).
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  plugins: [preact({ devtoolsInProd: false, prefreshEnabled: true })],
  build: { outDir: '../dist/dashboard', emptyOutDir: true, sourcemap: false, reportCompressedSize: false },
  server: { proxy: { '/api': process.env.DASHBOARD_API ?? 'http://127.0.0.1:8080' } },
  logLevel: 'warn',
});
