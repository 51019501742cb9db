import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Docker-backed suites share one engine; files run in parallel but each uses its own ids and labels.
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
    globalSetup: ["test/global-setup.ts"],
  },
});
