// The sequencer: one leader across all server processes (db/leader-lock.ts). Every interval, or
// as soon as enough attempts wait, it takes queued attempts in attempt order, appends their
// receipts as leaves, extends the tiles, signs a checkpoint and commits all of it in one
// transaction. The log_state row lock makes batches strictly sequential even if two processes
// ever believe they lead, so indexes stay contiguous and a crash resumes exactly after the last
// committed batch.
//
// State (one instance per process):
//   #running   true from start() until stop(); the loop ends when it turns false.
//   #lock      leadership; only a leader sequences. Lost with its connection (then #edge is
//              dropped, since another process may extend the tree meanwhile).
//   #edge      the right edge of the tree as of the last batch this process committed: the hashes
//              needed to append without reading the tree. Reloaded from tiles whenever log_state's
//              size differs from it (another leader ran, or a batch failed and rolled back).
//   #key       the signing key in use; re-read when signing_keys names another current key.
//   #pending   attempts recorded in this process since the last batch: at `eagerAt` the loop is
//              woken early instead of waiting for the interval.
//   #wake      cuts the current wait short (recorded(), stop()).
//   #guard     the fork guard (fork-guard.ts): checked under the lock before anything is signed;
//              while it refuses, batches are skipped (attempts keep queueing in log_queue) and the
//              lock is kept, so no other process signs on this database either.
//
//   follower ──lock acquired──▶ leader: batch, wait interval (or wake), batch, …
//   leader ──lock connection lost──▶ follower (tries again every interval)
//   leader ──stop()──▶ final batches (until the queue is empty, at most 20) ──▶ lock released
import type { Logger } from "pino";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { LeaderLock } from "../db/leader-lock.ts";
import { SequencerTracing } from "../tracing/sequencer-tracing.ts";
import { ATTEMPT_OUTCOMES } from "../delivery/attempt-outcome.ts";
import type { AttestationMetrics } from "./attestation-metrics.ts";
import { CheckpointFeed, latestCheckpoint, type StoredCheckpoint } from "./checkpoints.ts";
import { SigningRefused, type ForkGuard } from "./fork-guard.ts";
import { checkpointBody, signCheckpoint, type LogKey } from "./log-key.ts";
import { leafHash, rootAt } from "./merkle.ts";
import { receiptBytes } from "./receipt.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { currentKey } from "./signing-keys.ts";
import { TileReader, TreeEdge } from "./tiles.ts";

/** Arbitrary constant naming the sequencer's advisory lock. */
export const SEQUENCER_LOCK = 7_246_100_002;

export interface SequencerOptions {
  origin: string;
  intervalMs: number;
  envSeed: Buffer | undefined;
  /** Opens (and seals) the stored, generated log key seed. */
  secrets: SecretBox;
  /** Most leaves per batch (one transaction). */
  batchMax?: number;
  /** Queued attempts that trigger a batch before the interval ends. */
  eagerAt?: number;
}

const attemptRow = z.object({
  id: z.string(),
  event_id: z.string(),
  tenant_id: z.string(),
  endpoint_id: z.string(),
  url: z.string(),
  attempt: z.number(),
  payload_sha256: z.string(),
  started_at: z.date(),
  duration_ms: z.number(),
  outcome: z.enum(ATTEMPT_OUTCOMES),
  status_code: z.number().nullable(),
  response_sha256: z.string().nullable(),
  /** The attempt's span, for the batch span's links (not part of the receipt). */
  traceparent: z.string().nullable(),
});

export class Sequencer {
  readonly #pool: DatabasePool;
  readonly #log: Logger;
  readonly #metrics: AttestationMetrics;
  readonly #feed: CheckpointFeed;
  readonly #guard: ForkGuard;
  readonly #tracing: SequencerTracing;
  readonly #options: Required<SequencerOptions>;
  #edge: TreeEdge | undefined;
  #key: LogKey | undefined;
  readonly #lock: LeaderLock;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #pending = 0;

  constructor(
    deps: { pool: DatabasePool; databaseUrl: string; log: Logger; metrics: AttestationMetrics; feed: CheckpointFeed; guard: ForkGuard; tracing?: SequencerTracing },
    options: SequencerOptions,
  ) {
    this.#pool = deps.pool;
    this.#lock = new LeaderLock(deps.databaseUrl, SEQUENCER_LOCK, {
      onLost: () => {
        this.#log.warn("lost the sequencer lock connection");
        this.#edge = undefined;
      },
    });
    this.#log = deps.log.child({ component: "sequencer" });
    this.#metrics = deps.metrics;
    this.#feed = deps.feed;
    this.#guard = deps.guard;
    this.#tracing = deps.tracing ?? new SequencerTracing(undefined);
    this.#options = { batchMax: 10_000, eagerAt: 5_000, ...options };
  }

  get leader(): boolean {
    return this.#lock.held;
  }

  start(): void {
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Attempts were recorded in this process; a big enough backlog starts a batch early. */
  recorded(count: number): void {
    this.#pending += count;
    if (this.#pending >= this.#options.eagerAt) this.#wake?.();
  }

  /** Stops; a leader first sequences what is queued and signs a last checkpoint. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    if (this.leader) {
      try {
        for (let i = 0; i < 20 && (await this.sequenceOnce()) > 0; i++);
      } catch (err) {
        this.#log.warn({ err }, "final sequencing failed; the next leader will continue");
      }
    }
    await this.#lock.release();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      try {
        if (!this.leader && (await this.#lock.tryAcquire())) this.#log.info("this process is the log sequencer");
        if (this.leader) {
          let appended: number;
          do {
            appended = await this.sequenceOnce();
          } while (this.#running && appended >= this.#options.batchMax);
        }
      } catch (err) {
        // A failed batch rolled back; the next one reloads the edge. Leadership is kept: a lost
        // lock connection is noticed by its own error handler, and dropping the lock on every
        // transient failure would only make leadership flap between processes.
        this.#log.warn({ err }, "sequencing failed; retrying");
        this.#edge = undefined;
      }
      // stop() may have been called during the batch, when there was no wait to cut short.
      if (!this.#running) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.#options.intervalMs);
        const self = this;
        function done() {
          clearTimeout(timer);
          self.#wake = undefined;
          resolve();
        }
        this.#wake = done;
      });
    }
  }

  /**
   * Sequences one batch; returns the number of leaves appended (0 while the fork guard refuses to
   * sign). Exposed for tests and shutdown.
   */
  async sequenceOnce(): Promise<number> {
    if (this.#guard.refusal) {
      this.#guard.remind();
      return 0;
    }
    this.#key ??= await currentKey(this.#pool, this.#options.origin, this.#options.envSeed, this.#options.secrets);
    const keyId = await this.#pool.maybeOneFirst(sql.type(z.object({ key_id: z.instanceof(Buffer) }))`
      SELECT key_id FROM signing_keys WHERE valid_until IS NULL`);
    if (!keyId || !keyId.equals(this.#key.keyId)) this.#key = await currentKey(this.#pool, this.#options.origin, this.#options.envSeed, this.#options.secrets);
    const key = this.#key;
    const started = performance.now();
    const startedMs = Date.now();
    let published: StoredCheckpoint | undefined;
    let appended = 0;
    let sequenced: readonly z.infer<typeof attemptRow>[] = [];
    try {
      await this.#pool.transaction(async (tx) => {
        const size = Number(await tx.oneFirst(sql.type(z.object({ tree_size: z.string() }))`SELECT tree_size FROM log_state FOR UPDATE`));
        await this.#guard.check(tx, size, key);
        if (!this.#edge || this.#edge.size !== size) this.#edge = await TreeEdge.load(tx, size);
        // "= ANY (ARRAY(…))" keeps both look-ups on their indexes: joins here were planned as hash
        // joins over full scans of log_queue and delivery_attempts, a cost that grows with the tables.
        const attempts = await tx.any(sql.type(attemptRow)`
          WITH q AS (
            DELETE FROM log_queue WHERE attempt_seq = ANY (ARRAY(
              SELECT attempt_seq FROM log_queue ORDER BY attempt_seq LIMIT ${this.#options.batchMax}))
            RETURNING attempt_seq
          )
          SELECT a.id, a.event_id, a.tenant_id, a.endpoint_id, a.url, a.attempt, a.payload_sha256, a.started_at,
            a.duration_ms, a.outcome, a.status_code, a.response_sha256, a.traceparent
          FROM delivery_attempts a WHERE a.seq = ANY (ARRAY(SELECT attempt_seq FROM q)) ORDER BY a.seq`);
        sequenced = attempts;
        const hasCheckpoint = (await latestCheckpoint(tx)) !== undefined;
        if (attempts.length === 0 && hasCheckpoint) return;

        const receipts = attempts.map((a) => receiptBytes({ ...a, attempt_id: a.id }));
        const edge = this.#edge;
        const changed = edge.append(receipts.map(leafHash));
        if (attempts.length > 0) {
          // The receipts travel as one binary parameter sliced by offset: a bytea[] would go as hex
          // text, twice the bytes, encoded here and decoded by Postgres.
          const starts: number[] = [];
          let offset = 1;
          for (const r of receipts) {
            starts.push(offset);
            offset += r.length;
          }
          await tx.query(sql.unsafe`
            INSERT INTO log_leaves (idx, attempt_id, tenant_id, receipt)
            SELECT size + ord - 1, attempt_id, tenant_id, substring(${sql.binary(Buffer.concat(receipts))}::bytea FROM start FOR length)
            FROM unnest(${sql.array(attempts.map((a) => a.id), "uuid")}, ${sql.array(attempts.map((a) => a.tenant_id), "uuid")},
              ${sql.array(starts, "int4")}, ${sql.array(receipts.map((r) => r.length), "int4")})
              WITH ORDINALITY AS t (attempt_id, tenant_id, start, length, ord),
              (SELECT ${size}::int8 AS size) AS s`);
          await tx.query(sql.unsafe`
            INSERT INTO log_tiles (level, n, hashes) VALUES
            ${sql.join(changed.map((t) => sql.fragment`(${t.level}, ${t.n}, ${sql.binary(Buffer.concat(t.hashes))})`), sql.fragment`, `)}
            ON CONFLICT (level, n) DO UPDATE SET hashes = excluded.hashes`);
        }
        const root = await rootAt(edge.source(new TileReader(tx)), edge.size);
        // Recorded outside the database before it can be published (fork-guard.ts).
        await this.#guard.beforeCommit({ size: edge.size, root });
        const signedAt = new Date();
        const note = signCheckpoint(key, checkpointBody(this.#options.origin, edge.size, root), Math.floor(signedAt.getTime() / 1000));
        await tx.query(sql.unsafe`
          INSERT INTO checkpoints (tree_size, root_hash, note, signed_at, key_id)
          VALUES (${edge.size}, ${sql.binary(root)}, ${note}, ${signedAt.toISOString()}, ${sql.binary(key.keyId)})
          ON CONFLICT (tree_size) DO NOTHING`);
        await tx.query(sql.unsafe`UPDATE log_state SET tree_size = ${edge.size}`);
        appended = attempts.length;
        published = { treeSize: edge.size, rootHash: root, note, signedAt };
      });
    } catch (err) {
      // The in-memory edge may be ahead of what committed; reload it next time.
      this.#edge = undefined;
      this.#guard.failed();
      this.#tracing.batch(startedMs, sequenced, { error: err });
      // The guard has said why, loudly; the attempts wait in log_queue.
      if (err instanceof SigningRefused) return 0;
      throw err;
    }
    if (published) {
      this.#tracing.batch(startedMs, sequenced, { treeSize: published.treeSize });
      try {
        await this.#guard.committed({ size: published.treeSize, root: published.rootHash });
      } catch (err) {
        if (!(err instanceof SigningRefused)) throw err;
      }
      this.#pending = Math.max(0, this.#pending - appended);
      this.#metrics.batchSize.observe(appended);
      this.#log.debug({ tree_size: published.treeSize, appended, ms: Math.round(performance.now() - started) }, "checkpoint signed");
      this.#feed.published(published);
    }
    return appended;
  }
}
