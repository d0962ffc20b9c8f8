// Liveness and readiness: /healthz says the process is up; /readyz and grpc.health.v1 say the
// database answers, the schema is current, the server is not draining, and every capability that
// reports readiness (the log: not refusing to sign) is ready. Capabilities add their detail.
import { ConnectError, Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { HealthCheckResponse_ServingStatus as Status, type Health, type HealthCheckRequest } from "@kapsel/contracts/health";
import { sql } from "slonik";
import type { Database } from "../db/database.ts";
import { migrationsApplied } from "../db/migrate.ts";
import { exact, sendJson, type PlainRoute } from "./plain-route.ts";

export interface ReadinessReport {
  ready: boolean;
  database: boolean;
  migrations: boolean;
  draining: boolean;
  [detail: string]: unknown;
}

/** A capability's say in readiness, with detail merged into the /readyz report. */
export type ReadinessComponent = () => Promise<{ ready: boolean; detail: Record<string, unknown> }>;

export class Readiness {
  readonly #db: Database;
  readonly #components: readonly ReadinessComponent[];
  readonly #drain = new AbortController();

  /** Aborts when shutdown begins, so health watchers report NOT_SERVING before streams end. */
  readonly drainSignal = this.#drain.signal;

  get draining(): boolean {
    return this.#drain.signal.aborted;
  }

  startDraining(): void {
    this.#drain.abort();
  }

  constructor(db: Database, components: readonly ReadinessComponent[] = []) {
    this.#db = db;
    this.#components = components;
  }

  /** The latest look, shared by every check for half a second: /readyz and health watchers need
   * no credential, so however many ask, the database and the components are asked twice a second. */
  #look: { at: number; result: Promise<{ ready: boolean; database: boolean; migrations: boolean; detail: Record<string, unknown> }> } | undefined;

  async check(): Promise<ReadinessReport> {
    const now = Date.now();
    if (!this.#look || now - this.#look.at >= 500) this.#look = { at: now, result: this.#lookAround() };
    const { ready, database, migrations, detail } = await this.#look.result;
    return { ready: ready && !this.draining, database, migrations, draining: this.draining, ...detail };
  }

  async #lookAround(): Promise<{ ready: boolean; database: boolean; migrations: boolean; detail: Record<string, unknown> }> {
    let database = false;
    let migrations = false;
    try {
      await this.#db.pool.query(sql.unsafe`SELECT 1`);
      database = true;
      migrations = await migrationsApplied(this.#db.pool, this.#db.migrations);
    } catch {
      // reported as not ready
    }
    let ready = database && migrations;
    const detail: Record<string, unknown> = {};
    for (const component of this.#components) {
      const report = await component();
      ready &&= report.ready;
      Object.assign(detail, report.detail);
    }
    return { ready, database, migrations, detail };
  }
}

/** GET /healthz (the process answers) and GET /readyz (the readiness report; 503 when not ready). */
export function healthRoutes(readiness: Readiness): PlainRoute[] {
  return [
    exact("GET", "/healthz", (_req, res) => sendJson(res, 200, { status: "ok" })),
    exact("GET", "/readyz", async (_req, res) => {
      const report = await readiness.check();
      sendJson(res, report.ready ? 200 : 503, report);
    }),
  ];
}

const SERVICES = new Set(["", "kapsel.v1.IngestService", "kapsel.v1.ManagementService", "kapsel.v1.AttestationService"]);

/** grpc.health.v1.Health for gRPC load balancers and `grpc-health-probe`. */
export function healthService(readiness: Readiness): ServiceImpl<typeof Health> {
  const statusOf = async (service: string): Promise<Status> => {
    if (!SERVICES.has(service)) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
    return (await readiness.check()).ready ? Status.SERVING : Status.NOT_SERVING;
  };
  return {
    check: async (req: HealthCheckRequest) => ({ status: await statusOf(req.service) }),
    list: async () => {
      const status = (await readiness.check()).ready ? Status.SERVING : Status.NOT_SERVING;
      return { statuses: Object.fromEntries([...SERVICES].map((name) => [name, { status }])) };
    },
    async *watch(req: HealthCheckRequest, ctx: HandlerContext) {
      // Per the protocol, an unknown service is reported as SERVICE_UNKNOWN on the stream.
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = SERVICES.has(req.service) ? await statusOf(req.service) : Status.SERVICE_UNKNOWN;
        if (status !== last) {
          last = status;
          yield { status };
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(t);
            ctx.signal.removeEventListener("abort", wake);
            readiness.drainSignal.removeEventListener("abort", wake);
            resolve();
          };
          const t = setTimeout(wake, 1000);
          ctx.signal.addEventListener("abort", wake);
          if (!readiness.draining) readiness.drainSignal.addEventListener("abort", wake);
        });
      }
      // A deadline or cancellation must reach the client as such, not as a normal end of stream.
      throw ctx.signal.reason;
    },
  };
}
