// Gauges read from the database are refreshed in the background, never while a scrape waits: a
// scrape then costs no query, cannot pile aggregates onto a struggling database, and still answers
// (with the last known values, and how old they are) when Postgres is down. Each module that owns
// the data owns its refresher; one refresh at a time per module, each statement time-boxed.
import { Gauge, type Registry } from "prom-client";
import { sql, type DatabasePool, type DatabaseTransactionConnection } from "slonik";
import type { Logger } from "./logger.ts";

/** How old the last successful refresh of a module's database gauges is. */
const STALENESS = "kapsel_metrics_refresh_age_seconds";

export interface BackgroundGaugesOptions {
  /** The module whose gauges these are (the `module` label of the staleness gauge). */
  module: string;
  intervalMs: number;
  /** Each statement of a refresh is cancelled after this long. */
  statementTimeoutMs?: number;
}

export class BackgroundGauges {
  readonly #pool: DatabasePool;
  readonly #log: Logger;
  readonly #options: Required<BackgroundGaugesOptions>;
  readonly #refresh: (tx: DatabaseTransactionConnection) => Promise<void>;
  #lastSuccessMs: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  /** `refresh` reads the figures in one read-only transaction and sets the module's gauges. */
  constructor(
    registry: Registry,
    deps: { pool: DatabasePool; log: Logger },
    options: BackgroundGaugesOptions,
    refresh: (tx: DatabaseTransactionConnection) => Promise<void>,
  ) {
    this.#pool = deps.pool;
    this.#log = deps.log;
    this.#options = { statementTimeoutMs: 2_000, ...options };
    this.#refresh = refresh;
    stalenessOf(registry).set(options.module, () => (this.#lastSuccessMs === undefined ? -1 : (Date.now() - this.#lastSuccessMs) / 1000));
  }

  /** Refreshes at once, then every interval, until stop(). */
  start(): void {
    if (this.#timer || this.#stopped) return;
    // The next refresh is scheduled when this one ends: never two at once, even on a slow database.
    const tick = () => {
      void this.refreshNow().finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#options.intervalMs);
      });
    };
    this.#timer = setTimeout(tick, 0);
  }

  /** No refresh after this one; one in flight is not awaited (on a hung database it would hold
   * shutdown up), it fails when the pool closes. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** One refresh; a failure keeps the previous values (the staleness gauge shows their age). */
  async refreshNow(): Promise<void> {
    try {
      await this.#pool.transaction(async (tx) => {
        await tx.query(sql.unsafe`SET TRANSACTION READ ONLY`);
        await tx.query(sql.unsafe`SELECT set_config('statement_timeout', ${String(this.#options.statementTimeoutMs)}, true)`);
        await this.#refresh(tx);
      });
      this.#lastSuccessMs = Date.now();
    } catch (err) {
      this.#log.debug({ err, module: this.#options.module }, "refreshing database gauges failed; keeping the last values");
    }
  }
}

/** The ages reported by a registry's staleness gauge, one per module. */
const ages = new WeakMap<object, Map<string, () => number>>();

function stalenessOf(registry: Registry): Map<string, () => number> {
  const existing = registry.getSingleMetric(STALENESS);
  if (existing) return ages.get(existing)!;
  const modules = new Map<string, () => number>();
  const gauge = new Gauge({
    name: STALENESS,
    help: "Seconds since a module's database-derived gauges were last refreshed (-1 before the first refresh)",
    labelNames: ["module"],
    registers: [registry],
    collect() {
      for (const [module, age] of modules) this.set({ module }, age());
    },
  });
  ages.set(gauge, modules);
  return modules;
}
