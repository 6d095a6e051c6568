import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Built into Django's static/ folder with stable file names, so templates can link them
// without reading a manifest.
export default defineConfig({
  plugins: [react()],
  base: "/static/dist/",
  build: {
    outDir: "../static/dist",
    emptyOutDir: true,
    sourcemap: false,
    rolldownOptions: {
      input: "src/main.tsx",
      output: {
        entryFileNames: "assets/[name].js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
