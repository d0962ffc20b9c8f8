import { defineConfig } from "vitest/config";

// The workspace packages' exports point at their builds (dist/), as published; tests run them from
// their TypeScript sources instead, through the `paths` in tsconfig.json (the type check reads the
// same table), so a change is tested without a build. Processes that tests spawn
// (`server/src/cli.ts`) use the builds that `npm ci` makes.
const resolve = { tsconfigPaths: true };

// Three projects: the verifier's and the witness's tests need nothing but themselves; everything
// that talks to the server shares one embedded Postgres started by the global set-up (each file
// gets its own database cloned from a migrated template).
export default defineConfig({
  test: {
    projects: [
      {
        resolve,
        test: {
          name: "verifier",
          include: ["verifier/test/**/*.test.ts"],
          testTimeout: 60_000,
          // The projects run one after the other (the machine has 2 cores): verifier first.
          sequence: { groupOrder: 0 },
        },
      },
      {
        resolve,
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
        resolve,
        test: {
          name: "server",
          include: ["server/test/**/*.test.ts", "sdk/test/**/*.test.ts", "console/test/**/*.test.ts", "test/**/*.test.ts"],
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
