import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// The build goes to ../internal/webui/dist, which the daemon embeds
// (go:embed can't reach outside its package). The directory keeps a
// committed .gitkeep so a plain `go build` works without the UI; the
// build script empties everything else first.
// `npm run dev` proxies the API to a daemon given by CORRAL_URL.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: '../internal/webui/dist',
    emptyOutDir: false,
    assetsDir: 'assets',
    chunkSizeWarningLimit: 1500,
    sourcemap: false,
  },
  server: {
    proxy: {
      '/api': { target: process.env.CORRAL_URL ?? 'https://127.0.0.1:8006', secure: false, ws: true, changeOrigin: true },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
  },
});
