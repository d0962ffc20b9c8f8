// Leadership among server processes by a session-level Postgres advisory lock, held on a
// connection of its own: when the leader's process dies, its session ends, the lock is released,
// and the next process that tries takes over. No lease to renew and no clock to trust.
//
//   follower ──tryAcquire(): lock granted──▶ leader
//   leader ──lock connection errors or ends──▶ follower (onLost is called; try again later)
//   leader or follower ──release()──▶ follower, connection closed
//
// The lock connection is kept open between tries: a follower that keeps it open waits in the
// same session it will lead in.
import pg from "pg";

export interface LeaderLockOptions {
  /** Called once when a held lock is lost with its connection. */
  onLost?: () => void;
}

export class LeaderLock {
  readonly #databaseUrl: string;
  readonly #lockId: number;
  readonly #onLost: () => void;
  #client: pg.Client | undefined;
  #held = false;

  constructor(databaseUrl: string, lockId: number, options: LeaderLockOptions = {}) {
    this.#databaseUrl = databaseUrl;
    this.#lockId = lockId;
    this.#onLost = options.onLost ?? (() => {});
  }

  get held(): boolean {
    return this.#held;
  }

  /** Tries the lock (opening the lock connection when needed); true while this process leads. */
  async tryAcquire(): Promise<boolean> {
    if (!this.#client) {
      const client = new pg.Client({ connectionString: this.#databaseUrl });
      const lost = () => {
        if (this.#client !== client) return;
        this.#client = undefined;
        if (this.#held) {
          this.#held = false;
          this.#onLost();
        }
      };
      client.on("error", lost);
      client.on("end", lost);
      await client.connect();
      this.#client = client;
    }
    const { rows } = await this.#client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [this.#lockId]);
    if (rows[0]?.ok) this.#held = true;
    return this.#held;
  }

  /** Gives up leadership (if held) by closing the lock connection. */
  async release(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#held = false;
    await client?.end().catch(() => {});
  }
}
