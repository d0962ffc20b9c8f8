// One typed configuration object, read from the environment once at start. Nothing else reads
// process.env: a bad value stops the process with a message naming the variable.
import { keptNameProblem } from "./http/header-names.ts";
import { parseWitnesses, type WitnessingConfig } from "./attestation/witnessing/witness-config.ts";
import { parseTracingConfig, TRACING_ENVIRONMENT, TracingConfigError, type TracingConfig } from "./tracing/tracing-config.ts";

/** The configuration, nested by capability; each capability's assembler takes its own slice. */
export interface Config {
  /** Local state: embedded Postgres data, generated secrets. */
  dataDir: string;
  /** KAPSEL_LOG_LEVEL when set; otherwise `serve` logs at info and one-off commands at warn. */
  logLevel: string | undefined;
  /** Admin token for tenant management; undefined → generated and stored under dataDir. */
  adminToken: string | undefined;
  database: DatabaseConfig;
  secrets: SecretsConfig;
  http: HttpConfig;
  metrics: MetricsConfig;
  ingest: IngestConfig;
  delivery: DeliveryConfig;
  attestation: AttestationConfig;
  retention: RetentionConfig;
  /** OpenTelemetry tracing, from the standard OTEL_* variables (off without an endpoint). */
  tracing: TracingConfig;
}

export interface DatabaseConfig {
  /** Postgres connection string; undefined → embedded Postgres under the data dir. */
  url: string | undefined;
  poolSize: number;
}

export interface SecretsConfig {
  /** KAPSEL_MASTER_KEY, decoded: the key that seals stored secrets. Undefined → a key generated
   * into the data folder (embedded database only; with DATABASE_URL it is required). */
  masterKey: Buffer | undefined;
}

export interface HttpConfig {
  host: string;
  port: number;
  tls: { certFile: string; keyFile: string } | undefined;
  /** Cap for one IngestBatch message (a batch of payloads needs room); other RPCs have smaller
   * limits of their own (http/rpc-limits.ts). */
  maxRpcBytes: number;
  shutdownTimeoutMs: number;
  timeouts: HttpTimeouts;
  /** Open connections on the main port; more are closed at once. */
  maxConnections: number;
  /** HTTP/2 streams one connection may have open at once (the SETTINGS value). */
  maxConcurrentStreams: number;
  /** Several processes on this host may listen on the same port (SO_REUSEPORT, Linux): the
   * kernel spreads new connections among them. */
  reusePort: boolean;
  streams: StreamLimits;
}

/** How long a client may take: each bound closes what a silent or slow client holds open. */
export interface HttpTimeouts {
  /** From accepting a connection to its first bytes (the protocol is told from them; with TLS,
   * the handshake). */
  firstBytesMs: number;
  /** From the first byte of an HTTP/1.1 request to the end of its headers. */
  headersMs: number;
  /** Longest pause between two pieces of a request body. */
  bodyIdleMs: number;
  /** From the start of a request to the end of its body. */
  requestMs: number;
  /** An HTTP/1.1 connection between requests, or an HTTP/2 connection without open streams. */
  idleMs: number;
}

/** Long-lived server streams (WatchEvent(s), WatchCheckpoints, Health/Watch, reflection). */
export interface StreamLimits {
  /** A stream ends (normally, so the client reopens it) after this long, or at the client's
   * deadline if that comes first. */
  maxLifetimeMs: number;
  /** Streams open at once on one connection. */
  perConnection: number;
  /** Streams open at once for one tenant in this process. */
  perTenant: number;
  /** Streams open at once, in this process, on the RPCs that need no credential. */
  unauthenticated: number;
}

/** Prometheus metrics: never on the public port without a token. */
export interface MetricsConfig {
  /** The separate metrics listener; undefined when turned off. */
  listen: { host: string; port: number } | undefined;
  /** With a token, /metrics also answers on the main port to `Authorization: Bearer <token>`
   * (and the separate listener asks for it too). */
  token: string | undefined;
  /** How often database-derived gauges are read in the background. */
  refreshMs: number;
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
  queue: { maxRows: number; maxBytes: number; maxInFlight: number; maxInFlightBytes: number };
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

export interface RetentionConfig {
  /** The windows of tenants that chose none, in seconds (0 = kept until erased). */
  defaults: { payloadSeconds: number; responseSeconds: number; eventSeconds: number };
  /** The longest window a tenant key may choose for itself (0 = no limit). */
  maxSeconds: number;
  /** How often the purger looks for expired data (and expired idempotency keys). */
  purgeIntervalMs: number;
  /** Rows per purge transaction: small enough that no lock or transaction is held for long. */
  purgeBatchSize: number;
  /** Idempotency keys older than this are deleted (the ingest deduplication window). */
  idempotencyWindowMs: number;
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
  { name: "KAPSEL_MASTER_KEY", help: "base64 of 32 random bytes that seals stored secrets (openssl rand -base64 32); required with DATABASE_URL; unset on embedded Postgres → generated into KAPSEL_DATA_DIR/master-key" },
  { name: "KAPSEL_SIGNING_KEY", help: "log signing key: base64 Ed25519 seed (32 bytes); unset → generated and stored in the database" },
  { name: "KAPSEL_ALLOW_PRIVATE_DESTINATIONS", help: "true → endpoints may point at private or loopback addresses", default: "false" },
  { name: "KAPSEL_DESTINATION_ALLOWLIST", help: "comma-separated CIDRs or host names allowed although private" },
  { name: "KAPSEL_MAX_PAYLOAD_BYTES", help: "largest event payload", default: String(10 * 1024 * 1024) },
  { name: "KAPSEL_MAX_RPC_BYTES", help: "largest IngestBatch message (Ingest takes a payload's worth, other RPCs 64 KiB)", default: String(64 * 1024 * 1024) },
  { name: "KAPSEL_METRICS_LISTEN", help: "HOST:PORT of the separate /metrics listener, or off", default: "127.0.0.1:9464" },
  { name: "KAPSEL_METRICS_TOKEN", help: "bearer token for /metrics (at least 16 characters); set → /metrics also answers on the main port, to this token only" },
  { name: "KAPSEL_METRICS_REFRESH_MS", help: "how often database-derived gauges (queue, circuits, log) are read in the background", default: "5000" },
  { name: "KAPSEL_HTTP_FIRST_BYTES_TIMEOUT_MS", help: "a new connection must send its first bytes (or finish TLS) within this", default: "10000" },
  { name: "KAPSEL_HTTP_HEADERS_TIMEOUT_MS", help: "an HTTP/1.1 request's headers must arrive within this", default: "20000" },
  { name: "KAPSEL_HTTP_BODY_IDLE_TIMEOUT_MS", help: "longest pause between pieces of a request body", default: "30000" },
  { name: "KAPSEL_HTTP_REQUEST_TIMEOUT_MS", help: "a request (headers and body) must arrive within this", default: "300000" },
  { name: "KAPSEL_HTTP_IDLE_TIMEOUT_MS", help: "an idle connection (HTTP/1.1 keep-alive, HTTP/2 without open streams) closes after this", default: "65000" },
  { name: "KAPSEL_HTTP_MAX_CONNECTIONS", help: "open connections on the main port; more are refused", default: "10000" },
  { name: "KAPSEL_HTTP_REUSE_PORT", help: "true → several kapsel processes on this host may listen on the same port (Linux SO_REUSEPORT; the kernel spreads connections among them)", default: "false" },
  { name: "KAPSEL_HTTP2_MAX_CONCURRENT_STREAMS", help: "HTTP/2 streams open at once per connection", default: "256" },
  { name: "KAPSEL_STREAM_MAX_LIFETIME_MS", help: "a server stream (watches, reflection) ends after this unless the client's deadline is sooner", default: "600000" },
  { name: "KAPSEL_STREAMS_PER_CONNECTION", help: "server streams open at once on one connection", default: "32" },
  { name: "KAPSEL_STREAMS_PER_TENANT", help: "server streams open at once per tenant in one process", default: "100" },
  { name: "KAPSEL_STREAMS_UNAUTHENTICATED", help: "server streams open at once without a credential (Health/Watch, reflection) in one process", default: "1000" },
  { name: "KAPSEL_DB_POOL_SIZE", help: "Postgres connections per process (all opened at start and kept open)", default: "8" },
  { name: "KAPSEL_SHUTDOWN_TIMEOUT_MS", help: "how long SIGTERM waits for in-flight work", default: "10000" },
  { name: "KAPSEL_IDEMPOTENCY_WINDOW_MS", help: "deduplication window for idempotency keys", default: String(24 * 3600 * 1000) },
  { name: "KAPSEL_RATE_LIMIT_PER_SECOND", help: "default per-tenant ingest rate", default: "50000" },
  { name: "KAPSEL_RATE_LIMIT_BURST", help: "default per-tenant ingest burst", default: "100000" },
  { name: "KAPSEL_FAILED_SIGNATURES_PER_SECOND", help: "failed source signatures allowed per sender address and endpoint/source (past it: 429 before the body is read; never charged to the tenant)", default: "5" },
  { name: "KAPSEL_FAILED_SIGNATURES_BURST", help: "burst of failed source signatures per sender address and endpoint/source", default: "20" },
  { name: "KAPSEL_FAILED_SIGNATURES_PER_ADDRESS_PER_SECOND", help: "failed source signatures allowed per sender address over all endpoints and sources", default: "20" },
  { name: "KAPSEL_FAILED_SIGNATURES_PER_ADDRESS_BURST", help: "burst of failed source signatures per sender address", default: "100" },
  { name: "KAPSEL_INGEST_MAX_IN_FLIGHT", help: "ingest requests being accepted at once (from a request's first byte to its answer); past it ingest answers E9002 at once", default: "4096" },
  { name: "KAPSEL_INGEST_MAX_IN_FLIGHT_BYTES", help: "payload bytes that ingest requests in flight may hold (declared Content-Length reserved on arrival); past it ingest answers E9002 at once", default: String(256 * 1024 * 1024) },
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
  { name: "KAPSEL_PAYLOAD_RETENTION_SECONDS", help: "default: how long a message's payload and headers are kept after its events are final (0 = until erased)", default: String(30 * 86400) },
  { name: "KAPSEL_RESPONSE_RETENTION_SECONDS", help: "default: how long an attempt's response excerpt is kept (0 = until erased)", default: String(30 * 86400) },
  { name: "KAPSEL_EVENT_RETENTION_SECONDS", help: "default: how long final events and their attempts are kept (0 = forever); receipts and the log stay regardless", default: String(90 * 86400) },
  { name: "KAPSEL_RETENTION_MAX_SECONDS", help: "longest window a tenant may choose for itself; the admin token may exceed it (0 = no limit)", default: String(365 * 86400) },
  { name: "KAPSEL_PURGE_INTERVAL_MS", help: "how often the purger removes expired payloads, excerpts, events and idempotency keys", default: "60000" },
  { name: "KAPSEL_PURGE_BATCH_SIZE", help: "rows per purge transaction", default: "500" },
  ...TRACING_ENVIRONMENT,
];

export class ConfigError extends Error {}

/** A retention window fits the contract's uint32 seconds (about 136 years). */
export const MAX_RETENTION_SECONDS = 4_294_967_295;

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
  const masterKey = raw("KAPSEL_MASTER_KEY");
  if (masterKey !== undefined && (!/^[A-Za-z0-9+/]{43}=$/.test(masterKey.trim()) || Buffer.from(masterKey.trim(), "base64").length !== 32)) {
    throw new ConfigError("KAPSEL_MASTER_KEY: expected the base64 of 32 random bytes (make one with: openssl rand -base64 32)");
  }
  const adminToken = raw("KAPSEL_ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError("KAPSEL_ADMIN_TOKEN: must be at least 16 characters");
  }
  const keptHeaders = list("KAPSEL_KEPT_HEADERS").map((h) => h.toLowerCase());
  for (const name of keptHeaders) {
    const problem = keptNameProblem(name);
    if (problem !== undefined) throw new ConfigError(`KAPSEL_KEPT_HEADERS: ${problem}`);
  }
  const allowList = list("KAPSEL_DESTINATION_ALLOWLIST");
  const metricsToken = raw("KAPSEL_METRICS_TOKEN");
  if (metricsToken !== undefined && (metricsToken.length < 16 || !/^[\x21-\x7e]+$/.test(metricsToken))) {
    throw new ConfigError("KAPSEL_METRICS_TOKEN: must be at least 16 printable characters without spaces");
  }
  const metricsListen = listenAddress("KAPSEL_METRICS_LISTEN", str("KAPSEL_METRICS_LISTEN"));
  const headersMs = int("KAPSEL_HTTP_HEADERS_TIMEOUT_MS", 100, 600_000);
  const requestMs = int("KAPSEL_HTTP_REQUEST_TIMEOUT_MS", 100, 3_600_000);
  if (requestMs < headersMs) throw new ConfigError("KAPSEL_HTTP_REQUEST_TIMEOUT_MS: must be at least KAPSEL_HTTP_HEADERS_TIMEOUT_MS");
  const signingKey = raw("KAPSEL_SIGNING_KEY");
  if (signingKey !== undefined && (!/^[A-Za-z0-9+/]{43}=$/.test(signingKey) || Buffer.from(signingKey, "base64").length !== 32)) {
    throw new ConfigError("KAPSEL_SIGNING_KEY: expected the base64 of a 32-byte Ed25519 seed");
  }
  const retentionDefaults = {
    payloadSeconds: int("KAPSEL_PAYLOAD_RETENTION_SECONDS", 0, MAX_RETENTION_SECONDS),
    responseSeconds: int("KAPSEL_RESPONSE_RETENTION_SECONDS", 0, MAX_RETENTION_SECONDS),
    eventSeconds: int("KAPSEL_EVENT_RETENTION_SECONDS", 0, MAX_RETENTION_SECONDS),
  };
  const { eventSeconds } = retentionDefaults;
  if (eventSeconds > 0 && [retentionDefaults.payloadSeconds, retentionDefaults.responseSeconds].some((s) => s === 0 || s > eventSeconds)) {
    throw new ConfigError("KAPSEL_EVENT_RETENTION_SECONDS: with events deleted after a window, the payload and response windows must be set and not longer");
  }
  const idempotencyWindowMs = int("KAPSEL_IDEMPOTENCY_WINDOW_MS", 1, 30 * 24 * 3600 * 1000);
  let witnesses;
  try {
    witnesses = parseWitnesses(raw("KAPSEL_WITNESSES"), raw("KAPSEL_WITNESS_QUORUM"));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  let tracing: TracingConfig;
  try {
    tracing = parseTracingConfig(raw);
  } catch (err) {
    if (err instanceof TracingConfigError) throw new ConfigError(err.message);
    throw err;
  }
  const dataDir = str("KAPSEL_DATA_DIR");
  const config: Config = {
    dataDir,
    logLevel,
    adminToken,
    database: { url: databaseUrl, poolSize: int("KAPSEL_DB_POOL_SIZE", 2, 500) },
    secrets: { masterKey: masterKey === undefined ? undefined : Buffer.from(masterKey.trim(), "base64") },
    http: {
      host: str("KAPSEL_HOST"),
      port: int("KAPSEL_PORT", 0, 65535),
      tls: tlsCert !== undefined && tlsKey !== undefined ? { certFile: tlsCert, keyFile: tlsKey } : undefined,
      maxRpcBytes: int("KAPSEL_MAX_RPC_BYTES", 1024, 1024 * 1024 * 1024),
      shutdownTimeoutMs: int("KAPSEL_SHUTDOWN_TIMEOUT_MS", 0, 600_000),
      timeouts: {
        firstBytesMs: int("KAPSEL_HTTP_FIRST_BYTES_TIMEOUT_MS", 100, 600_000),
        headersMs,
        bodyIdleMs: int("KAPSEL_HTTP_BODY_IDLE_TIMEOUT_MS", 100, 600_000),
        requestMs,
        idleMs: int("KAPSEL_HTTP_IDLE_TIMEOUT_MS", 100, 3_600_000),
      },
      maxConnections: int("KAPSEL_HTTP_MAX_CONNECTIONS", 1, 1_000_000),
      maxConcurrentStreams: int("KAPSEL_HTTP2_MAX_CONCURRENT_STREAMS", 1, 10_000),
      reusePort: bool("KAPSEL_HTTP_REUSE_PORT"),
      streams: {
        maxLifetimeMs: int("KAPSEL_STREAM_MAX_LIFETIME_MS", 100, 86_400_000),
        perConnection: int("KAPSEL_STREAMS_PER_CONNECTION", 1, 10_000),
        perTenant: int("KAPSEL_STREAMS_PER_TENANT", 1, 100_000),
        unauthenticated: int("KAPSEL_STREAMS_UNAUTHENTICATED", 0, 100_000),
      },
    },
    metrics: {
      listen: metricsListen,
      token: metricsToken,
      refreshMs: int("KAPSEL_METRICS_REFRESH_MS", 10, 3_600_000),
    },
    ingest: {
      maxPayloadBytes: int("KAPSEL_MAX_PAYLOAD_BYTES", 1, 1024 * 1024 * 1024),
      idempotencyWindowMs,
      rateLimit: { perSecond: num("KAPSEL_RATE_LIMIT_PER_SECOND", 0.001, 1e9), burst: int("KAPSEL_RATE_LIMIT_BURST", 1, 1e9) },
      keptHeaders,
      failedSignatureLimit: { perSecond: num("KAPSEL_FAILED_SIGNATURES_PER_SECOND", 0.001, 1e6), burst: int("KAPSEL_FAILED_SIGNATURES_BURST", 1, 1e6) },
      failedSignatureAddressLimit: {
        perSecond: num("KAPSEL_FAILED_SIGNATURES_PER_ADDRESS_PER_SECOND", 0.001, 1e6),
        burst: int("KAPSEL_FAILED_SIGNATURES_PER_ADDRESS_BURST", 1, 1e6),
      },
      queue: {
        maxRows: int("KAPSEL_INGEST_QUEUE_MAX_ROWS", 1, 10_000_000),
        maxBytes: int("KAPSEL_INGEST_QUEUE_MAX_BYTES", 1024, 16 * 1024 * 1024 * 1024),
        maxInFlight: int("KAPSEL_INGEST_MAX_IN_FLIGHT", 1, 10_000_000),
        maxInFlightBytes: int("KAPSEL_INGEST_MAX_IN_FLIGHT_BYTES", 1024, 16 * 1024 * 1024 * 1024),
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
    retention: {
      defaults: retentionDefaults,
      maxSeconds: int("KAPSEL_RETENTION_MAX_SECONDS", 0, MAX_RETENTION_SECONDS),
      purgeIntervalMs: int("KAPSEL_PURGE_INTERVAL_MS", 10, 86_400_000),
      purgeBatchSize: int("KAPSEL_PURGE_BATCH_SIZE", 1, 10_000),
      idempotencyWindowMs,
    },
    tracing,
  };
  // Several processes may share an external database, and a container's data folder may not
  // outlive it: a key made up locally could differ between processes or vanish with every secret
  // it sealed. The operator keeps this key, like the database password.
  if (databaseUrl !== undefined && masterKey === undefined) {
    throw new ConfigError("KAPSEL_MASTER_KEY: required with DATABASE_URL (the base64 of 32 random bytes, e.g. openssl rand -base64 32; keep it safe: stored secrets cannot be read without it)");
  }
  return config;
}

/** `HOST:PORT` (an IPv6 host in brackets), or `off`. */
function listenAddress(name: string, value: string): { host: string; port: number } | undefined {
  if (value.toLowerCase() === "off") return undefined;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(value);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new ConfigError(`${name}=${JSON.stringify(value)}: expected HOST:PORT (IPv6 in brackets) or off`);
  return { host: m[1] ?? m[2]!, port };
}

/** The help text listing every variable. */
export function environmentHelp(): string {
  const width = Math.max(...ENVIRONMENT.map((v) => v.name.length));
  return ENVIRONMENT.map((v) =>
    `  ${v.name.padEnd(width)}  ${v.help}${v.default !== undefined ? ` (default ${v.default})` : ""}`,
  ).join("\n");
}
