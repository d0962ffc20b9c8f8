// A wake-up channel shared by this process and every other process on the database: notify()
// calls this process's subscribers at once and tells the others with Postgres NOTIFY; subscribers
// hear both. It carries no data, only "look again" (new delivery jobs, for example).
//
// NOTIFY costs a query and takes a lock at commit, so under load notices to other processes are
// coalesced: at most one in flight, at most one per `minGapMs`, and one asked for meanwhile is
// sent when the gap ends, so no wake-up is lost. LISTEN runs on a connection of its own, only while
// there are subscribers, and reconnects after a second when the connection drops.
import pg from "pg";
import { sql, type DatabasePool } from "slonik";

export interface NotifyChannelOptions {
  /** Shortest gap between two NOTIFYs from this process (default 20 ms). */
  minGapMs?: number;
}

export class NotifyChannel {
  readonly name: string;
  readonly #pool: DatabasePool;
  readonly #databaseUrl: string;
  readonly #minGapMs: number;
  readonly #subscribers = new Set<() => void>();
  #lastSentMs = 0;
  #scheduled = false;
  /** The NOTIFY on its way (or waiting out the gap), for flush(). */
  #pending: Promise<void> | undefined;
  #listener: pg.Client | undefined;
  #listening: Promise<void> | undefined;

  constructor(pool: DatabasePool, databaseUrl: string, name: string, options: NotifyChannelOptions = {}) {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new TypeError(`channel name ${JSON.stringify(name)} is not a plain identifier`);
    this.name = name;
    this.#pool = pool;
    this.#databaseUrl = databaseUrl;
    this.#minGapMs = options.minGapMs ?? 20;
  }

  /** Wakes this process's subscribers now and other processes' soon (coalesced). */
  notify(): void {
    this.#wakeLocal();
    if (this.#scheduled) return;
    this.#scheduled = true;
    const wait = this.#lastSentMs + this.#minGapMs - Date.now();
    const sent = (wait <= 0 ? this.#send() : new Promise((r) => setTimeout(r, wait)).then(() => this.#send())).finally(() => {
      if (this.#pending === sent) this.#pending = undefined;
    });
    this.#pending = sent;
  }

  /** Resolves once a notice asked for has been sent to other processes (before closing the pool). */
  async flush(): Promise<void> {
    await this.#pending;
  }

  /** Calls `wake` on every notice, from this process or another, until the returned function is
   * called (which resolves once the LISTEN connection, if this was the last subscriber, is closed). */
  subscribe(wake: () => void): () => Promise<void> {
    this.#subscribers.add(wake);
    this.#listening ??= this.#listen();
    return async () => {
      this.#subscribers.delete(wake);
      if (this.#subscribers.size > 0) return;
      await this.#listener?.end().catch(() => {});
      await this.#listening;
    };
  }

  #wakeLocal(): void {
    for (const wake of this.#subscribers) wake();
  }

  async #send(): Promise<void> {
    this.#scheduled = false;
    this.#lastSentMs = Date.now();
    // A lost notice only delays other processes until their next poll.
    await this.#pool.query(sql.unsafe`SELECT pg_notify(${this.name}, '')`).catch(() => {});
  }

  async #listen(): Promise<void> {
    try {
      while (this.#subscribers.size > 0) {
        const client = new pg.Client({ connectionString: this.#databaseUrl });
        try {
          const ended = new Promise<void>((resolve) => {
            client.on("error", () => resolve());
            client.on("end", () => resolve());
          });
          await client.connect();
          client.on("notification", () => this.#wakeLocal());
          await client.query(`LISTEN ${this.name}`);
          this.#listener = client;
          if (this.#subscribers.size > 0) await ended;
        } catch {
          // reconnect below
        }
        this.#listener = undefined;
        await client.end().catch(() => {});
        if (this.#subscribers.size > 0) await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      this.#listening = undefined;
    }
  }
}
