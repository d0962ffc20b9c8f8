// Builds the console into dist/, served by the Kapsel server under /console/ (server/src/http/
// console-route.ts). Hashed file names under assets/ are cached forever; index.html never.
// Everything is bundled: no CDN, no web fonts, nothing inlined that the Content-Security-Policy
// would have to allow.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // No data: URLs or inline scripts: every asset is a file the CSP's 'self' covers.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
  },
  logLevel: "warn",
});
