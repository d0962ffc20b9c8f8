// The delivery engine of one server process: claims due jobs in batches, runs them through a
// bounded pool of in-flight HTTP requests (globally and per endpoint), decides retries, and writes
// outcomes back in batches. It wakes when new jobs are announced on the jobs channel (by this
// process or another, db/notify-channel.ts), and on a timer for scheduled retries and circuit probes.
//
// State (one instance per process):
//   #running          true from start() until stop(); the claim loop ends when it turns false.
//   #claims/#reserved claims in flight (at most MAX_CLAIMS) and the worker slots they reserved, so
//                     two claims never fetch more jobs than there is room for.
//   #inFlight         deliveries under way; #perEndpoint counts them per endpoint.
//   #waiting          claimed jobs held back because their endpoint is at its per-endpoint limit;
//                     each starts when one of that endpoint's deliveries ends (#waitingCount total).
//   #outcomes         finished attempts not yet written; #flushing is the write in progress (one
//                     at a time, taking everything queued meanwhile). A failed write waits in
//                     #retryTimers, then #retriesDue, for a bounded number of further tries.
//   #dueTimes         when retries this process scheduled fall due, so it wakes for them rather
//                     than at the next poll.
//   #claimPausedUntil after a failed claim (database trouble), no claim before this time.
//   #maybeDue/#dueSignals  whether the database may hold jobs to claim: set by the jobs channel, a
//                     full claim, a timer (poll, due retry), released jobs and probe outcomes;
//                     cleared by a claim that found less than it asked for with no signal since
//                     it began. A finished delivery only frees room; it claims only if work may wait.
//   #lastProbeMs      when half-open probes were last looked for (at most every 250 ms).
//   #wake/#wakeRequested  cut the loop's sleep short; a request during a claim is not lost.
//   #abort            aborts in-flight requests when stop() runs out of time; #idle resolves once
//                     the last delivery ends.
//
//   idle ──wake (jobs channel, finished delivery, due retry, poll)──▶ claim (while work may be due
//   and room ≥ a worthwhile batch) ──jobs──▶ deliver ──outcome──▶ flush ──▶ idle
//   ingest commit ──handed-over jobs──▶ deliver (no claim)
//   any ──stop()──▶ no new claims; in-flight finish (or abort at the deadline); outcomes written;
//   held-back jobs released unsent.
import { createHash, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { NotifyChannel } from "../db/notify-channel.ts";
import type { DeliveryTracing } from "../tracing/delivery-tracing.ts";
import { uuidv7 } from "../uuid.ts";
import type { DeliveryMetrics } from "./delivery-metrics.ts";
import type { EventChanges } from "./event-changes.ts";
import type { HttpSender } from "./http-sender.ts";
import type { HandOffReservation, JobHandOff } from "./job-handoff.ts";
import type { ClaimedJob, ClaimedRow, CompletedBatch, DisabledEndpoint, JobQueue, Outcome } from "./job-queue.ts";
import { decide, DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry-policy.ts";
import { signingHeaders } from "./webhook-signature.ts";

const MAX_CLAIMS = 2;
/** How often one batch of outcomes is tried before it is given up to lease expiry, and the
 * pauses between tries (doubling): about 24 s in all, long enough to ride out a failover. */
const OUTCOME_WRITE_TRIES = 8;
const OUTCOME_RETRY_BASE_MS = 250;
const OUTCOME_RETRY_MAX_MS = 8_000;
/** A write costs Postgres about as much for a few outcomes as for dozens (a transaction, a commit
 * flushed to disk): while running, a write that would carry fewer than OUTCOME_GATHER outcomes
 * waits OUTCOME_LINGER_MS for more. Only the recording waits (the event shows delivering a few ms
 * longer); deliveries do not, and the lease is far longer. */
const OUTCOME_GATHER = 64;
const OUTCOME_LINGER_MS = 10;

/** A batch of outcomes on its way to the database, with the tries it has had. */
interface OutcomeWrite {
  outcomes: Outcome[];
  tries: number;
}

/** Why in-flight deliveries are aborted when stop() runs out of time. */
export class ShuttingDown extends Error {
  constructor() {
    super("server shutting down");
    this.name = "ShuttingDown";
  }
}

export interface DispatcherDeps {
  jobs: NotifyChannel;
  queue: JobQueue;
  sender: HttpSender;
  metrics: DeliveryMetrics;
  changes: EventChanges;
  log: Logger;
  /** An attempt's spans, and the trace context its request carries. */
  tracing: DeliveryTracing;
  /** After this process disabled endpoints (410 Gone), so ingest's cache drops them at once. */
  onEndpointsDisabled: (endpoints: DisabledEndpoint[]) => void;
  /** After attempts are recorded (the sequencer starts early on a big backlog). */
  onRecorded: (count: number) => void;
}

export interface DispatcherOptions {
  concurrency: number;
  perEndpoint: number;
  /** Longest sleep when idle: how soon scheduled retries and circuit probes are noticed. */
  pollMs?: number;
  claimBatch?: number;
  retryPolicy?: RetryPolicy;
  random?: () => number;
}

export class Dispatcher implements JobHandOff {
  readonly #jobs: NotifyChannel;
  readonly #queue: JobQueue;
  readonly #sender: HttpSender;
  readonly #metrics: DeliveryMetrics;
  readonly #changes: EventChanges;
  readonly #log: Logger;
  readonly #tracing: DeliveryTracing;
  readonly #options: Required<DispatcherOptions>;

  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #wakeRequested = false;
  #inFlight = 0;
  readonly #perEndpoint = new Map<string, number>();
  readonly #waiting = new Map<string, ClaimedJob[]>();
  #waitingCount = 0;
  #outcomes: Outcome[] = [];
  #flushing: Promise<void> | undefined;
  /** Failed writes whose next try is due, and those still waiting for it. */
  #retriesDue: OutcomeWrite[] = [];
  readonly #retryTimers = new Map<NodeJS.Timeout, OutcomeWrite>();
  #lastProbeMs = 0;
  /** Claims under way, and the room they have reserved. */
  readonly #claims = new Set<Promise<void>>();
  #reserved = 0;
  #claimPausedUntil = 0;
  #maybeDue = true;
  #dueSignals = 0;
  /** When retries this process scheduled fall due, so the loop wakes for them rather than at the
   * next poll (bounded; beyond it the poll finds them). */
  #dueTimes: number[] = [];
  readonly #abort = new AbortController();
  #unsubscribe: (() => Promise<void>) | undefined;
  #idle: (() => void) | undefined;
  readonly #onEndpointsDisabled: (endpoints: DisabledEndpoint[]) => void;
  readonly #onRecorded: (count: number) => void;

  constructor(deps: DispatcherDeps, options: DispatcherOptions) {
    this.#jobs = deps.jobs;
    this.#onEndpointsDisabled = deps.onEndpointsDisabled;
    this.#onRecorded = deps.onRecorded;
    this.#queue = deps.queue;
    this.#sender = deps.sender;
    this.#metrics = deps.metrics;
    this.#changes = deps.changes;
    this.#log = deps.log.child({ component: "dispatcher" });
    this.#tracing = deps.tracing;
    this.#options = { pollMs: 1000, claimBatch: 200, retryPolicy: DEFAULT_RETRY_POLICY, random: Math.random, ...options };
  }

  start(): void {
    this.#running = true;
    this.#loop = this.#run();
    this.#unsubscribe = this.#jobs.subscribe(() => this.#due());
  }

  /** Something became due: claim now rather than at the next timer. */
  wake(): void {
    this.#wakeRequested = true;
    this.#wake?.();
  }

  /** Jobs may be waiting in the database: the next worthwhile room claims. */
  #due(): void {
    this.#maybeDue = true;
    this.#dueSignals++;
    this.wake();
  }

  /** Sets room aside (in #reserved, as a claim does) for events about to be inserted leased to
   * this process: while running, as many as there are free worker slots, so that what is in memory
   * (in flight, held back, reserved) stays within the pool's bound; none when saturated. An
   * endpoint's concurrency limit is kept when they are sent: beyond it they wait in #waiting, in
   * order, like claimed jobs (and go back unsent if their lease could run out meanwhile). */
  reserve(events: readonly { id: string; endpointId: string }[]): HandOffReservation | undefined {
    if (!this.#running) return undefined;
    const room = this.#options.concurrency - (this.#inFlight + this.#waitingCount + this.#reserved);
    if (room <= 0 || events.length === 0) return undefined;
    const eventIds = new Set(events.slice(0, room).map((e) => e.id));
    this.#reserved += eventIds.size;
    const leaseMs = this.#queue.leaseMs;
    return { leaseId: randomUUID(), leaseMs, sendByMs: Date.now() + leaseMs, eventIds };
  }

  /** Sends jobs the ingest statement inserted leased to this process; after stop() began, gives
   * them back unsent. */
  handOver(reservation: HandOffReservation, rows: readonly ClaimedRow[]): void {
    if (rows.length === 0) {
      this.cancel(reservation);
      return;
    }
    // Opening the secrets is synchronous unless one cannot be opened (its job goes back unsent).
    void this.#queue.openHandedOver(rows, reservation.sendByMs).then((jobs) => {
      this.cancel(reservation);
      if (!this.#running) return this.#release(jobs);
      this.#metrics.handedOver.inc(jobs.length);
      this.#changes.changed(jobs.map((j) => j.event_id));
      for (const job of jobs) this.#enqueue(job);
    }, (err: unknown) => {
      this.cancel(reservation);
      this.#log.warn({ err }, "could not open handed-over jobs; their leases will expire");
    });
  }

  /** Frees a reservation's room. */
  cancel(reservation: HandOffReservation): void {
    this.#reserved -= reservation.eventIds.size;
    // Room came free (also for a claim).
    this.wake();
  }

  /** Stops claiming, lets in-flight deliveries finish (aborting them after `timeoutMs`), writes
   * every outcome, and hands back jobs that were claimed but never sent. */
  async stop(timeoutMs: number): Promise<void> {
    this.#running = false;
    this.wake();
    await this.#loop;
    const waiting = [...this.#waiting.values()].flat();
    this.#waiting.clear();
    this.#waitingCount = 0;
    const settled = new Promise<void>((resolve) => {
      this.#idle = resolve;
      if (this.#inFlight === 0) resolve();
    });
    const timer = setTimeout(() => this.#abort.abort(new ShuttingDown()), timeoutMs);
    await settled;
    clearTimeout(timer);
    // Writes waiting to be retried get their last tries now.
    for (const [retry, write] of this.#retryTimers) {
      clearTimeout(retry);
      this.#retriesDue.push(write);
    }
    this.#retryTimers.clear();
    await this.#flush();
    await this.#release(waiting);
    await this.#unsubscribe?.();
    await this.#sender.close();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      this.#wakeRequested = false;
      const now = Date.now();
      const busy = this.#inFlight + this.#waitingCount + this.#reserved;
      const room = this.#options.concurrency - busy;
      // Under load, wait until a worthwhile batch is free rather than claiming a few jobs after
      // every finished delivery: a claim costs about the same for 5 rows as for 100.
      const worthwhile = busy === 0 || room >= Math.min(this.#options.claimBatch, Math.ceil(this.#options.concurrency / 4));
      if (this.#maybeDue && now >= this.#claimPausedUntil && this.#claims.size < MAX_CLAIMS && room > 0 && worthwhile) {
        this.#claim(Math.min(room, this.#options.claimBatch), now);
        continue;
      }
      if (this.#wakeRequested) continue;
      const paused = this.#claimPausedUntil - now;
      await this.#sleep(paused > 0 ? Math.min(paused, this.#sleepMs()) : this.#sleepMs());
    }
    await Promise.all(this.#claims);
  }

  /** Claims up to `limit` jobs (and due probes) and starts them. Up to MAX_CLAIMS run at once: a
   * claim is mostly waiting on Postgres (statement, commit), and deliveries to a fast destination
   * finish sooner than the next claim would, so one claim at a time leaves the workers idle. */
  #claim(limit: number, now: number): void {
    this.#reserved += limit;
    let reserved = true;
    const unreserve = () => {
      if (reserved) this.#reserved -= limit;
      reserved = false;
    };
    const probing = now - this.#lastProbeMs >= Math.min(250, this.#options.pollMs);
    if (probing) this.#lastProbeMs = now;
    const signals = this.#dueSignals;
    const claim = (async (): Promise<boolean> => {
      try {
        const jobs = probing ? await this.#queue.claimProbes(now) : [];
        const wanted = limit - jobs.length;
        let full = false;
        if (wanted > 0) {
          const claimed = await this.#queue.claim(wanted);
          full = claimed.length === wanted;
          jobs.push(...claimed);
        }
        unreserve();
        if (jobs.length > 0) this.#changes.changed(jobs.map((j) => j.event_id));
        for (const job of jobs) this.#enqueue(job);
        return full;
      } catch (err) {
        this.#log.warn({ err }, "claiming jobs failed; retrying");
        this.#claimPausedUntil = Date.now() + 1000;
        return true;
      } finally {
        unreserve();
      }
    })();
    const tracked: Promise<void> = claim.then((full) => {
      this.#claims.delete(tracked);
      // A full claim means more may be due now; otherwise new work signals (jobs channel, timers).
      if (full) this.#due();
      else if (this.#dueSignals === signals) this.#maybeDue = false;
    });
    this.#claims.add(tracked);
  }

  /** Until the earliest scheduled retry we know of, at most the poll interval. */
  #sleepMs(): number {
    const now = Date.now();
    this.#dueTimes = this.#dueTimes.filter((t) => t > now);
    return Math.min(this.#options.pollMs, ...this.#dueTimes.map((t) => t - now));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // The poll, or a retry this process scheduled, is due.
        this.#maybeDue = true;
        this.#dueSignals++;
        done();
      }, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }

  #enqueue(job: ClaimedJob): void {
    const busy = this.#perEndpoint.get(job.endpoint_id) ?? 0;
    if (busy < this.#options.perEndpoint) {
      void this.#deliver(job);
      return;
    }
    const queue = this.#waiting.get(job.endpoint_id) ?? [];
    queue.push(job);
    this.#waiting.set(job.endpoint_id, queue);
    this.#waitingCount++;
  }

  async #deliver(job: ClaimedJob): Promise<void> {
    this.#inFlight++;
    this.#perEndpoint.set(job.endpoint_id, (this.#perEndpoint.get(job.endpoint_id) ?? 0) + 1);
    try {
      if (Date.now() > job.sendByMs) {
        // It waited so long for a free slot that its lease could run out mid-attempt.
        await this.#release([job]);
        return;
      }
      const secrets = job.previous_secret ? [job.signing_secret, job.previous_secret] : [job.signing_secret];
      const trace = this.#tracing.attempt(job, Date.now());
      const result = await this.#sender.send({
        url: job.url,
        body: job.payload,
        headers: {
          ...job.headers,
          "content-type": job.content_type,
          ...signingHeaders(secrets, job.event_id, Math.floor(Date.now() / 1000), job.payload),
          ...trace.headers,
        },
        timeoutMs: job.timeout_ms,
        signal: this.#abort.signal,
      });
      const now = Date.now();
      const decision = decide(
        { outcome: result.outcome, statusCode: result.statusCode, retryAfter: result.retryAfter, refusedLocally: result.refusedLocally },
        job.attempt - job.round_start,
        job.max_attempts,
        now,
        this.#options.random,
        this.#options.retryPolicy,
      );
      trace.end(result, decision.kind);
      this.#metrics.attempts.inc({ outcome: result.outcome });
      this.#metrics.attemptDuration.observe({ outcome: result.outcome }, result.durationMs / 1000);
      if (result.outcome === "delivered") {
        const endedMs = result.startedAt.getTime() + result.durationMs;
        this.#metrics.ingestToDelivered.observe(Math.max(0, endedMs - job.received_at.getTime()) / 1000);
      }
      this.#log.debug({ event_id: job.event_id, request_id: job.request_id, attempt: job.attempt, outcome: result.outcome, status: result.statusCode, ms: result.durationMs }, "delivery attempt");
      this.#outcomes.push({
        job,
        attemptId: uuidv7(result.startedAt.getTime()),
        result,
        payloadSha256: createHash("sha256").update(job.payload).digest("hex"),
        decision,
        traceparent: trace.traceparent,
      });
      void this.#flush();
    } catch (err) {
      this.#log.error({ err, event_id: job.event_id }, "delivery crashed; the lease will expire and the job will be retried");
    } finally {
      this.#inFlight--;
      const left = (this.#perEndpoint.get(job.endpoint_id) ?? 1) - 1;
      if (left === 0) this.#perEndpoint.delete(job.endpoint_id);
      else this.#perEndpoint.set(job.endpoint_id, left);
      const next = this.#waiting.get(job.endpoint_id)?.shift();
      if (next) {
        this.#waitingCount--;
        if (this.#waiting.get(job.endpoint_id)!.length === 0) this.#waiting.delete(job.endpoint_id);
        void this.#deliver(next);
      } else {
        this.wake();
      }
      if (this.#inFlight === 0) this.#idle?.();
    }
  }

  /** Gives claimed jobs back unsent, with their attempt (and probe slot) unspent. */
  async #release(jobs: ClaimedJob[]): Promise<void> {
    try {
      await this.#queue.release(jobs);
      this.#changes.changed(jobs.map((j) => j.event_id));
      if (this.#running) this.#due();
    } catch (err) {
      this.#log.warn({ err }, "could not release unsent jobs; their leases will expire");
    }
  }

  /** Writes whatever outcomes queued while the previous write was in flight, in one transaction,
   * then any batch whose retry is due. A write that fails is retried on a timer, a few times with
   * growing pauses, while later batches go ahead: one batch never holds up the others. Writes are
   * idempotent (JobQueue.complete), so retrying a batch whose commit did happen but whose answer
   * was lost records nothing twice. A batch that still fails is given up: its leases expire and its
   * deliveries are redone (at-least-once). */
  #flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = (async () => {
      try {
        for (;;) {
          // Also before a write that follows one: what finished during a write is often a handful.
          if (this.#running && this.#retriesDue.length === 0 && this.#outcomes.length > 0 && this.#outcomes.length < OUTCOME_GATHER) {
            await new Promise((r) => setTimeout(r, OUTCOME_LINGER_MS));
          }
          const write = this.#retriesDue.shift() ?? (this.#outcomes.length > 0 ? { outcomes: this.#outcomes.splice(0, 500), tries: 0 } : undefined);
          if (!write) break;
          await this.#write(write);
        }
      } finally {
        this.#flushing = undefined;
      }
    })();
    return this.#flushing;
  }

  async #write(write: OutcomeWrite): Promise<void> {
    const batch = write.outcomes;
    try {
      const completed = await this.#queue.complete(batch, Date.now());
      const { disabledEndpoints } = completed;
      if (disabledEndpoints.length > 0) this.#onEndpointsDisabled(disabledEndpoints);
      logRecorded(this.#log, completed);
      this.#changes.changed(batch.map((o) => o.job.event_id));
      this.#onRecorded(batch.length);
      for (const o of batch) if (o.decision.kind === "retry" && this.#dueTimes.length < 1024) this.#dueTimes.push(o.decision.atMs);
      // A probe's outcome may have closed a circuit, making its jobs claimable; rescheduled jobs
      // are due at times this process waits for (#dueTimes).
      if (batch.some((o) => o.job.probe)) this.#due();
      else this.wake();
    } catch (err) {
      write.tries++;
      // While stopping there is no time to wait long: a few quick tries, then the leases decide.
      const limit = this.#running ? OUTCOME_WRITE_TRIES : Math.min(OUTCOME_WRITE_TRIES, 3);
      if (write.tries >= limit) {
        this.#log.error({ err, outcomes: batch.length, tries: write.tries }, "giving up writing delivery outcomes; their leases will expire and the deliveries will be redone");
        return;
      }
      this.#log.warn({ err, outcomes: batch.length, tries: write.tries }, "writing delivery outcomes failed; retrying");
      if (!this.#running) {
        await new Promise((r) => setTimeout(r, 200));
        this.#retriesDue.push(write);
        return;
      }
      const timer = setTimeout(() => {
        this.#retryTimers.delete(timer);
        this.#retriesDue.push(write);
        void this.#flush();
      }, Math.min(OUTCOME_RETRY_MAX_MS, OUTCOME_RETRY_BASE_MS * 2 ** (write.tries - 1)));
      this.#retryTimers.set(timer, write);
    }
  }
}

/**
 * What an operator reads at `info` once outcomes are recorded (so a batch written again logs
 * nothing twice): every failed attempt with what happens next, every event that ran out of
 * attempts, every circuit opened or closed, every endpoint disabled. Ids only: never a URL (its
 * query may hold a credential), a header or a payload.
 */
function logRecorded(log: Logger, completed: CompletedBatch): void {
  const decided = new Set(completed.decided);
  for (const o of completed.recorded) {
    if (o.result.outcome === "delivered") continue;
    const d = o.decision;
    const next = !decided.has(o) ? "superseded" : d.kind === "retry" ? new Date(d.atMs).toISOString() : d.kind === "disable" ? "endpoint disabled" : "none (event failed)";
    log.info({
      tenant_id: o.job.tenant_id, endpoint_id: o.job.endpoint_id, event_id: o.job.event_id, attempt: o.job.attempt,
      outcome: o.result.outcome, status: o.result.statusCode, error: o.result.error.slice(0, 200) || undefined, next_attempt: next,
    }, "delivery attempt failed");
    if (decided.has(o) && d.kind === "failed") {
      log.info({ tenant_id: o.job.tenant_id, endpoint_id: o.job.endpoint_id, event_id: o.job.event_id, attempts: o.job.attempt, reason: d.reason }, "event failed: no attempts left");
    }
  }
  for (const c of completed.circuits) {
    if (c.to === "open") {
      log.info({
        endpoint_id: c.endpointId, from: c.from, consecutive_failures: c.state.consecutiveFailures,
        retry_at: c.state.retryAtMs === undefined ? undefined : new Date(c.state.retryAtMs).toISOString(),
      }, c.from === "closed" ? "circuit opened" : "circuit re-opened: the probe failed");
    } else {
      log.info({ endpoint_id: c.endpointId, from: c.from }, "circuit closed");
    }
  }
  for (const e of completed.disabledEndpoints) log.warn({ tenant_id: e.tenantId, endpoint_id: e.endpointId, reason: e.reason }, "endpoint disabled");
}
