/**
 * The web lab's build: Preact + ECharts + onnxruntime-web, bundled into dist/web, which the server's /lab routes
 * serve (src/serve/lab/routes.ts). Library modules from src/ are bundled as they are (one copy of the engine,
 * steering, tokenizer and chart code); the few Node built-ins they import for file paths the browser never takes
 * resolve to node-shim.ts.
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const shim = fileURLToPath(new URL("./src/node-shim.ts", import.meta.url));

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  logLevel: "warn",
  resolve: {
    alias: [
      { find: /^node:[a-z_/]+$/, replacement: shim },
      // src/runtime/session.ts builds Node sessions; the lab builds web sessions instead (engine/web-engine.ts).
      { find: /^onnxruntime-node$/, replacement: shim },
      // csv-parse's Node build uses Buffer at load time; it ships a browser build of the same parser.
      { find: /^csv-parse\/sync$/, replacement: "csv-parse/browser/esm/sync" },
    ],
  },
  build: {
    outDir: fileURLToPath(new URL("../dist/web", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 4000,
    reportCompressedSize: false,
  },
});
