// One typed configuration object, read from the environment once at start. Nothing else reads
// process.env: a bad value stops the process with a message naming the variable.
import { parseWitnesses, type WitnessingConfig } from "./attestation/witnessing/witness-config.ts";

/** The configuration, nested by capability; each capability's assembler takes its own slice. */
export interface Config {
  /** Local state: embedded Postgres data, generated secrets. */
  dataDir: string;
  /** KAPSEL_LOG_LEVEL when set; otherwise `serve` logs at info and one-off commands at warn. */
  logLevel: string | undefined;
  /** Admin token for tenant management; undefined → generated and stored under dataDir. */
  adminToken: string | undefined;
  database: DatabaseConfig;
  http: HttpConfig;
  ingest: IngestConfig;
  delivery: DeliveryConfig;
  attestation: AttestationConfig;
}

export interface DatabaseConfig {
  /** Postgres connection string; undefined → embedded Postgres under the data dir. */
  url: string | undefined;
  poolSize: number;
}

export interface HttpConfig {
  host: string;
  port: number;
  tls: { certFile: string; keyFile: string } | undefined;
  /** Cap for one RPC message (Connect readMaxBytes); a batch of payloads needs room. */
  maxRpcBytes: number;
  shutdownTimeoutMs: number;
}

export interface IngestConfig {
  maxPayloadBytes: number;
  idempotencyWindowMs: number;
  /** Default per-tenant rate (tenants may have their own). */
  rateLimit: { perSecond: number; burst: number };
  /** Header names kept from every sender, besides the defaults and each endpoint's list. */
  keptHeaders: string[];
  /** Failed source signatures allowed per sender address and endpoint or source… */
  failedSignatureLimit: { perSecond: number; burst: number };
  /** …and per sender address over all of them. */
  failedSignatureAddressLimit: { perSecond: number; burst: number };
  /** What may wait for the group commit (rows: messages plus their events); past it, E9002. */
  queue: { maxRows: number; maxBytes: number; maxInFlight: number };
}

export interface DeliveryConfig {
  /** false → this process only ingests and serves APIs; others deliver. */
  enabled: boolean;
  retry: { baseMs: number; capMs: number };
  concurrency: number;
  perEndpointConcurrency: number;
  leaseMs: number;
  /** Default per-attempt timeout (endpoints may set their own). */
  timeoutMs: number;
  destinations: {
    /** Allow any private/loopback destination (tests, on-premise installs). */
    allowPrivate: boolean;
    /** CIDR ranges or host names allowed even though they are private. */
    allowList: string[];
  };
  circuit: { openMs: number; consecutiveFailures: number; minAttempts: number; failureRate: number; windowMs: number };
}

export interface AttestationConfig {
  origin: string;
  /** Base64 Ed25519 seed from the environment; undefined → generated and stored. */
  signingKey: string | undefined;
  checkpointIntervalMs: number;
  /** Where this host keeps the log's high-water mark (the fork guard's state file): the data dir. */
  stateDir: string;
  witnessing: WitnessingConfig;
}

interface VarSpec {
  name: string;
  help: string;
  default?: string;
}

/** Every environment variable Kapsel reads, for `kapsel --help`. */
export const ENVIRONMENT: readonly VarSpec[] = [
  { name: "DATABASE_URL", help: "Postgres URL; unset → embedded Postgres in KAPSEL_DATA_DIR/pg" },
  { name: "KAPSEL_DATA_DIR", help: "local state folder", default: ".kapsel" },
  { name: "KAPSEL_HOST", help: "listen address", default: "0.0.0.0" },
  { name: "KAPSEL_PORT", help: "listen port (HTTP/1.1, h2c, gRPC, Connect, gRPC-Web on one port)", default: "8080" },
  { name: "KAPSEL_TLS_CERT", help: "PEM certificate file; with KAPSEL_TLS_KEY serves TLS with ALPN" },
  { name: "KAPSEL_TLS_KEY", help: "PEM private key file" },
  { name: "KAPSEL_ADMIN_TOKEN", help: "admin token for tenant management; unset → generated into KAPSEL_DATA_DIR/admin-token" },
  { name: "KAPSEL_LOG_LEVEL", help: "pino level: fatal|error|warn|info|debug|trace|silent (default info for serve, warn for other commands)" },
  { name: "KAPSEL_LOG_ORIGIN", help: "attestation log origin (no spaces or +)", default: "kapsel.localhost/log" },
  { name: "KAPSEL_SIGNING_KEY", help: "log signing key: base64 Ed25519 seed (32 bytes); unset → generated and stored in the database" },
  { name: "KAPSEL_ALLOW_PRIVATE_DESTINATIONS", help: "true → endpoints may point at private or loopback addresses", default: "false" },
  { name: "KAPSEL_DESTINATION_ALLOWLIST", help: "comma-separated CIDRs or host names allowed although private" },
  { name: "KAPSEL_MAX_PAYLOAD_BYTES", help: "largest event payload", default: String(10 * 1024 * 1024) },
  { name: "KAPSEL_MAX_RPC_BYTES", help: "largest RPC message", default: String(64 * 1024 * 1024) },
  { name: "KAPSEL_DB_POOL_SIZE", help: "Postgres connections per process", default: "8" },
  { name: "KAPSEL_SHUTDOWN_TIMEOUT_MS", help: "how long SIGTERM waits for in-flight work", default: "10000" },
  { name: "KAPSEL_IDEMPOTENCY_WINDOW_MS", help: "deduplication window for idempotency keys", default: String(24 * 3600 * 1000) },
  { name: "KAPSEL_RATE_LIMIT_PER_SECOND", help: "default per-tenant ingest rate", default: "50000" },
  { name: "KAPSEL_RATE_LIMIT_BURST", help: "default per-tenant ingest burst", default: "100000" },
  { name: "KAPSEL_FAILED_SIGNATURES_PER_SECOND", help: "failed source signatures allowed per sender address and endpoint/source (past it: 429 before the body is read; never charged to the tenant)", default: "5" },
  { name: "KAPSEL_FAILED_SIGNATURES_BURST", help: "burst of failed source signatures per sender address and endpoint/source", default: "20" },
  { name: "KAPSEL_FAILED_SIGNATURES_PER_ADDRESS_PER_SECOND", help: "failed source signatures allowed per sender address over all endpoints and sources", default: "20" },
  { name: "KAPSEL_FAILED_SIGNATURES_PER_ADDRESS_BURST", help: "burst of failed source signatures per sender address", default: "100" },
  { name: "KAPSEL_INGEST_MAX_IN_FLIGHT", help: "ingest requests being accepted at once (from a request's first byte to its answer); past it ingest answers E9002 at once", default: "512" },
  { name: "KAPSEL_INGEST_QUEUE_MAX_ROWS", help: "rows (messages plus their events) that may wait for a database write; past it ingest answers E9002 at once", default: "5000" },
  { name: "KAPSEL_INGEST_QUEUE_MAX_BYTES", help: "payload bytes that may wait for a database write; past it ingest answers E9002 at once", default: String(64 * 1024 * 1024) },
  { name: "KAPSEL_KEPT_HEADERS", help: "extra inbound header names the gateway keeps for every endpoint (comma-separated)" },
  { name: "KAPSEL_CHECKPOINT_INTERVAL_MS", help: "how often the sequencer signs a checkpoint", default: "1000" },
  { name: "KAPSEL_WITNESSES", help: "witnesses that cosign the log's checkpoints (C2SP tlog-witness): comma-separated \"URL VKEY\" entries, one space between the witness's base URL and its 0x04 vkey" },
  { name: "KAPSEL_WITNESS_QUORUM", help: "how many of KAPSEL_WITNESSES must cosign a checkpoint for it to be witnessed (default: all of them)" },
  { name: "KAPSEL_WITNESS_INTERVAL_MS", help: "least time between two checkpoints submitted to one witness", default: "20000" },
  { name: "KAPSEL_WITNESS_TIMEOUT_MS", help: "bound on one add-checkpoint exchange with a witness", default: "10000" },
  { name: "KAPSEL_DELIVERY_ENABLED", help: "false → this process only ingests and serves APIs; others deliver", default: "true" },
  { name: "KAPSEL_RETRY_BASE_MS", help: "first retry delay ceiling (doubles per attempt, full jitter)", default: "1000" },
  { name: "KAPSEL_RETRY_CAP_MS", help: "largest retry delay, also the bound on an honoured Retry-After", default: "512000" },
  { name: "KAPSEL_DELIVERY_CONCURRENCY", help: "in-flight deliveries per process", default: "256" },
  { name: "KAPSEL_DELIVERY_PER_ENDPOINT_CONCURRENCY", help: "in-flight deliveries per endpoint per process", default: "64" },
  { name: "KAPSEL_DELIVERY_LEASE_MS", help: "how long a claimed job stays leased beyond its endpoint timeout (a dead process's work comes back after this)", default: "60000" },
  { name: "KAPSEL_DELIVERY_TIMEOUT_MS", help: "default per-attempt timeout", default: "15000" },
  { name: "KAPSEL_CIRCUIT_OPEN_MS", help: "how long an open circuit waits before half-open", default: "30000" },
  { name: "KAPSEL_CIRCUIT_CONSECUTIVE_FAILURES", help: "consecutive failures that open a circuit", default: "5" },
  { name: "KAPSEL_CIRCUIT_MIN_ATTEMPTS", help: "attempts in the window before the failure rate counts", default: "10" },
  { name: "KAPSEL_CIRCUIT_FAILURE_RATE", help: "failure rate (0..1) over the window that opens a circuit", default: "0.5" },
  { name: "KAPSEL_CIRCUIT_WINDOW_MS", help: "sliding window for the failure rate", default: "60000" },
];

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

/** Reads and validates the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const spec = new Map(ENVIRONMENT.map((v) => [v.name, v]));
  const raw = (name: string): string | undefined => {
    const value = env[name];
    if (value !== undefined && value !== "") return value;
    return spec.get(name)?.default;
  };
  const str = (name: string): string => raw(name) ?? "";
  const int = (name: string, min: number, max: number): number => {
    const value = str(name);
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      throw new ConfigError(`${name}=${JSON.stringify(value)}: expected an integer from ${min} to ${max}`);
    }
    return n;
  };
  const num = (name: string, min: number, max: number): number => {
    const value = str(name);
    const n = Number(value);
    if (value === "" || !Number.isFinite(n) || n < min || n > max) {
      throw new ConfigError(`${name}=${JSON.stringify(value)}: expected a number from ${min} to ${max}`);
    }
    return n;
  };
  const bool = (name: string): boolean => {
    const value = str(name).toLowerCase();
    if (["true", "1", "yes"].includes(value)) return true;
    if (["false", "0", "no"].includes(value)) return false;
    throw new ConfigError(`${name}=${JSON.stringify(value)}: expected true or false`);
  };
  const list = (name: string): string[] =>
    (raw(name) ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");

  const logLevel = raw("KAPSEL_LOG_LEVEL");
  if (logLevel !== undefined && !["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    throw new ConfigError(`KAPSEL_LOG_LEVEL=${JSON.stringify(logLevel)}: expected fatal|error|warn|info|debug|trace|silent`);
  }
  const logOrigin = str("KAPSEL_LOG_ORIGIN");
  if (!/^[^\s+]+$/.test(logOrigin)) {
    throw new ConfigError(`KAPSEL_LOG_ORIGIN=${JSON.stringify(logOrigin)}: must be non-empty with no spaces or '+'`);
  }
  const databaseUrl = raw("DATABASE_URL");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL: expected a postgres:// or postgresql:// URL");
  }
  const tlsCert = raw("KAPSEL_TLS_CERT");
  const tlsKey = raw("KAPSEL_TLS_KEY");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError("KAPSEL_TLS_CERT and KAPSEL_TLS_KEY must be set together");
  }
  const adminToken = raw("KAPSEL_ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError("KAPSEL_ADMIN_TOKEN: must be at least 16 characters");
  }
  const allowList = list("KAPSEL_DESTINATION_ALLOWLIST");
  const signingKey = raw("KAPSEL_SIGNING_KEY");
  if (signingKey !== undefined && (!/^[A-Za-z0-9+/]{43}=$/.test(signingKey) || Buffer.from(signingKey, "base64").length !== 32)) {
    throw new ConfigError("KAPSEL_SIGNING_KEY: expected the base64 of a 32-byte Ed25519 seed");
  }
  let witnesses;
  try {
    witnesses = parseWitnesses(raw("KAPSEL_WITNESSES"), raw("KAPSEL_WITNESS_QUORUM"));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const dataDir = str("KAPSEL_DATA_DIR");
  return {
    dataDir,
    logLevel,
    adminToken,
    database: { url: databaseUrl, poolSize: int("KAPSEL_DB_POOL_SIZE", 2, 500) },
    http: {
      host: str("KAPSEL_HOST"),
      port: int("KAPSEL_PORT", 0, 65535),
      tls: tlsCert !== undefined && tlsKey !== undefined ? { certFile: tlsCert, keyFile: tlsKey } : undefined,
      maxRpcBytes: int("KAPSEL_MAX_RPC_BYTES", 1024, 1024 * 1024 * 1024),
      shutdownTimeoutMs: int("KAPSEL_SHUTDOWN_TIMEOUT_MS", 0, 600_000),
    },
    ingest: {
      maxPayloadBytes: int("KAPSEL_MAX_PAYLOAD_BYTES", 1, 1024 * 1024 * 1024),
      idempotencyWindowMs: int("KAPSEL_IDEMPOTENCY_WINDOW_MS", 1, 30 * 24 * 3600 * 1000),
      rateLimit: { perSecond: num("KAPSEL_RATE_LIMIT_PER_SECOND", 0.001, 1e9), burst: int("KAPSEL_RATE_LIMIT_BURST", 1, 1e9) },
      keptHeaders: list("KAPSEL_KEPT_HEADERS").map((h) => h.toLowerCase()),
      failedSignatureLimit: { perSecond: num("KAPSEL_FAILED_SIGNATURES_PER_SECOND", 0.001, 1e6), burst: int("KAPSEL_FAILED_SIGNATURES_BURST", 1, 1e6) },
      failedSignatureAddressLimit: {
        perSecond: num("KAPSEL_FAILED_SIGNATURES_PER_ADDRESS_PER_SECOND", 0.001, 1e6),
        burst: int("KAPSEL_FAILED_SIGNATURES_PER_ADDRESS_BURST", 1, 1e6),
      },
      queue: {
        maxRows: int("KAPSEL_INGEST_QUEUE_MAX_ROWS", 1, 10_000_000),
        maxBytes: int("KAPSEL_INGEST_QUEUE_MAX_BYTES", 1024, 16 * 1024 * 1024 * 1024),
        maxInFlight: int("KAPSEL_INGEST_MAX_IN_FLIGHT", 1, 10_000_000),
      },
    },
    delivery: {
      enabled: bool("KAPSEL_DELIVERY_ENABLED"),
      retry: { baseMs: int("KAPSEL_RETRY_BASE_MS", 1, 3_600_000), capMs: int("KAPSEL_RETRY_CAP_MS", 1, 86_400_000) },
      concurrency: int("KAPSEL_DELIVERY_CONCURRENCY", 1, 100_000),
      perEndpointConcurrency: int("KAPSEL_DELIVERY_PER_ENDPOINT_CONCURRENCY", 1, 100_000),
      leaseMs: int("KAPSEL_DELIVERY_LEASE_MS", 100, 3_600_000),
      timeoutMs: int("KAPSEL_DELIVERY_TIMEOUT_MS", 10, 600_000),
      destinations: { allowPrivate: bool("KAPSEL_ALLOW_PRIVATE_DESTINATIONS"), allowList },
      circuit: {
        openMs: int("KAPSEL_CIRCUIT_OPEN_MS", 10, 86_400_000),
        consecutiveFailures: int("KAPSEL_CIRCUIT_CONSECUTIVE_FAILURES", 1, 10_000),
        minAttempts: int("KAPSEL_CIRCUIT_MIN_ATTEMPTS", 1, 100_000),
        failureRate: num("KAPSEL_CIRCUIT_FAILURE_RATE", 0.01, 1),
        windowMs: int("KAPSEL_CIRCUIT_WINDOW_MS", 1000, 86_400_000),
      },
    },
    attestation: {
      origin: logOrigin,
      signingKey,
      checkpointIntervalMs: int("KAPSEL_CHECKPOINT_INTERVAL_MS", 10, 3_600_000),
      stateDir: dataDir,
      witnessing: {
        ...witnesses,
        intervalMs: int("KAPSEL_WITNESS_INTERVAL_MS", 10, 86_400_000),
        timeoutMs: int("KAPSEL_WITNESS_TIMEOUT_MS", 100, 600_000),
      },
    },
  };
}

/** The help text listing every variable. */
export function environmentHelp(): string {
  const width = Math.max(...ENVIRONMENT.map((v) => v.name.length));
  return ENVIRONMENT.map((v) =>
    `  ${v.name.padEnd(width)}  ${v.help}${v.default !== undefined ? ` (default ${v.default})` : ""}`,
  ).join("\n");
}
