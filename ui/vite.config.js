import { defineConfig } from "vite";

// hyparquet (Parquet previews) repeats a run-length run as many times as the file says, past the end of the array it
// decodes into: a file of a hundred bytes can make the page build an array of billions of values. Each run is cut
// at the end of its array here, at build time; a hyparquet whose code no longer reads as expected fails the build
// rather than ship without the bound.
const BOUNDS = [
  [
    "  for (let i = 0; i < count; i++) {\n    output[seen + i] = value\n  }",
    "  for (let i = 0, n = Math.min(count, output.length - seen); i < n; i++) {\n    output[seen + i] = value\n  }",
  ],
  [
    "  let count = header >> 1 << 3 // values to read",
    "  let count = Math.max(0, Math.min(header >> 1 << 3, output.length - seen + 7 & ~7)) // values to read, within output",
  ],
];

function boundHyparquet() {
  return {
    name: "bound-hyparquet",
    transform(code, id) {
      if (!id.replaceAll("\\", "/").endsWith("node_modules/hyparquet/src/encoding.js")) return null;
      let out = code;
      for (const [from, to] of BOUNDS) {
        if (!out.includes(from)) throw new Error(`hyparquet's encoding.js changed: cannot bound its runs (${from.trim().slice(0, 40)}…)`);
        out = out.replace(from, to);
      }
      return { code: out, map: null };
    },
  };
}

// Built into the Python package, which `modelcycle server` serves at `/` (assets at /assets/, hashed names).
export default defineConfig({
  base: "/",
  plugins: [boundHyparquet()],
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../src/modelcycle/server/ui",
    emptyOutDir: true,
    assetsInlineLimit: 0, // no data: URLs for scripts; the page's CSP allows scripts from the server only
    modulePreload: { polyfill: false }, // the polyfill would be an inline script
    chunkSizeWarningLimit: 600, // ECharts (the parallel-coordinates plot) is one lazily loaded chunk of ~470 kB
  },
});
