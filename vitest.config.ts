import { defineConfig } from "vitest/config";

// Three projects: the verifier's and the witness's tests need nothing but themselves; everything
// that talks to the server shares one embedded Postgres started by the global set-up (each file
// gets its own database cloned from a migrated template).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "verifier",
          include: ["verifier/test/**/*.test.ts"],
          testTimeout: 60_000,
          // The projects run one after the other (the machine has 2 cores): verifier first.
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "witness",
          include: ["witness/test/**/*.test.ts"],
          testTimeout: 60_000,
          // Set-up compiles the verifier and the witness when their sources changed.
          hookTimeout: 120_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: "server",
          include: ["server/test/**/*.test.ts", "sdk/test/**/*.test.ts", "test/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
