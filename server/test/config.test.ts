// Configuration comes only from the environment and is validated at start: a bad value stops the
// process with exit code 2 and a message naming the variable; `kapsel --help` documents them all.
import { describe, expect, it } from "vitest";
import { ConfigError, ENVIRONMENT, loadConfig } from "../src/config.ts";
import { runCli } from "../../test/support/kapsel-cli.ts";

function configError(env: Record<string, string>): string | undefined {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return undefined;
}

describe("kapsel serve with a bad value", () => {
  it.each([
    ["KAPSEL_PORT", "abc"],
    ["KAPSEL_PORT", "70000"],
    ["KAPSEL_LOG_ORIGIN", "a b"],
    ["DATABASE_URL", "mysql://x"],
    ["KAPSEL_LOG_LEVEL", "loud"],
    ["KAPSEL_ALLOW_PRIVATE_DESTINATIONS", "maybe"],
    ["KAPSEL_ADMIN_TOKEN", "short"],
  ])("%s=%j exits 2 naming the variable, before touching any database", async (name, value) => {
    // Were the value accepted, this database (nothing listens on port 1) would fail start-up fast
    // with exit code 1 instead of starting an embedded Postgres.
    const r = await runCli(["serve"], { DATABASE_URL: "postgres://127.0.0.1:1/none", KAPSEL_PORT: "0", [name]: value });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^kapsel: configuration error: ${name}\\b`));
    expect(r.stdout).toBe("");
  });

  it("a TLS certificate without its key exits 2 naming both", async () => {
    const r = await runCli(["serve"], { DATABASE_URL: "postgres://127.0.0.1:1/none", KAPSEL_TLS_CERT: "/tmp/c.pem" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("KAPSEL_TLS_CERT and KAPSEL_TLS_KEY must be set together");
  });
});

describe("kapsel --help", () => {
  it("lists every environment variable the server reads, with defaults", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^kapsel \d+\.\d+\.\d+ — /);
    for (const v of ENVIRONMENT) {
      const line = r.stdout.split("\n").find((l) => l.trim().startsWith(`${v.name} `));
      expect(line, v.name).toBeDefined();
      if (v.default !== undefined) expect(line).toContain(`(default ${v.default})`);
    }
    for (const command of ["serve", "migrate", "tenant create NAME"]) expect(r.stdout).toContain(`kapsel ${command}`);
  });

  it("an unknown command prints the usage and exits 2", async () => {
    const r = await runCli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command frobnicate");
    expect(r.stderr).toContain("KAPSEL_PORT");
  });
});

describe("loadConfig", () => {
  it("fills documented defaults from an empty environment", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      database: { url: undefined },
      dataDir: ".kapsel",
      http: { host: "0.0.0.0", port: 8080, shutdownTimeoutMs: 10_000 },
      adminToken: undefined,
      attestation: { origin: "kapsel.localhost/log" },
      delivery: { destinations: { allowPrivate: false, allowList: [] } },
      ingest: { maxPayloadBytes: 10 * 1024 * 1024 },
    });
  });

  it("treats an empty value as unset", () => {
    const config = loadConfig({ KAPSEL_ADMIN_TOKEN: "", DATABASE_URL: "", KAPSEL_PORT: "" });
    expect([config.adminToken, config.database.url, config.http.port]).toEqual([undefined, undefined, 8080]);
  });

  it("parses lists, booleans and numbers", () => {
    const config = loadConfig({
      KAPSEL_DESTINATION_ALLOWLIST: " 10.0.0.0/8, hooks.internal ,,",
      KAPSEL_ALLOW_PRIVATE_DESTINATIONS: "YES",
      KAPSEL_KEPT_HEADERS: "X-Trace-Id, X-Shop",
      KAPSEL_PORT: "0",
      DATABASE_URL: "postgresql://u:p@db:5432/kapsel",
      KAPSEL_MASTER_KEY: Buffer.alloc(32, 9).toString("base64"),
    });
    expect(config.secrets.masterKey).toEqual(Buffer.alloc(32, 9));
    expect(config.delivery.destinations).toEqual({ allowList: ["10.0.0.0/8", "hooks.internal"], allowPrivate: true });
    expect(config.ingest.keptHeaders).toEqual(["x-trace-id", "x-shop"]);
    expect(config.http.port).toBe(0);
    expect(config.database.url).toBe("postgresql://u:p@db:5432/kapsel");
  });

  it.each([
    ["KAPSEL_PORT", "-1"],
    ["KAPSEL_PORT", "80.5"],
    ["KAPSEL_DB_POOL_SIZE", "1"],
    ["KAPSEL_SHUTDOWN_TIMEOUT_MS", "soon"],
    ["KAPSEL_LOG_ORIGIN", "a+b"],
    ["KAPSEL_MASTER_KEY", "c2hvcnQ="],
    ["KAPSEL_MASTER_KEY", Buffer.alloc(33).toString("base64")],
    ["KAPSEL_MASTER_KEY", Buffer.alloc(32).toString("hex")],
  ])("%s=%j is refused, naming the variable", (name, value) => {
    expect(configError({ [name]: value })).toMatch(new RegExp(`^${name}\\b`));
  });

  it("an external database needs KAPSEL_MASTER_KEY: a key made up per process could differ between processes or be lost", () => {
    expect(configError({ DATABASE_URL: "postgres://db/kapsel" })).toMatch(/^KAPSEL_MASTER_KEY: required with DATABASE_URL/);
    expect(loadConfig({}).secrets.masterKey).toBeUndefined();
  });

  it("ENVIRONMENT names each variable once, and every variable loadConfig reads is in it", () => {
    const names = ENVIRONMENT.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
    const read = new Set<string>();
    const env = new Proxy({} as Record<string, string | undefined>, {
      get: (_t, key) => {
        if (typeof key === "string") read.add(key);
        return undefined;
      },
    });
    loadConfig(env);
    expect([...read].filter((n) => !names.includes(n))).toEqual([]);
  });
});
