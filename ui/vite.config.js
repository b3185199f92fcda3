import { defineConfig } from "vite";

// Built into the Python package, which `modelcycle server` serves at `/` (assets at /assets/, hashed names).
export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../src/modelcycle/server/ui",
    emptyOutDir: true,
    assetsInlineLimit: 0, // no data: URLs for scripts; the page's CSP allows scripts from the server only
    modulePreload: { polyfill: false }, // the polyfill would be an inline script
    chunkSizeWarningLimit: 600, // ECharts (the parallel-coordinates plot) is one lazily loaded chunk of ~470 kB
  },
});
