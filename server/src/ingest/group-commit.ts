// Group commit: concurrent submissions share one write per batch. A batch is whatever queued
// while the previous write was in flight — no timer, so a lone item goes out at once, and under
// load batches grow by themselves. Each caller is answered only after the write holding its item
// has finished (for ingest: the statement committed, on disk with synchronous_commit on).
//
// Up to `writers` writes are in flight at once (default 2), so that Postgres works on one batch
// while another waits for its commit to reach disk and the server answers a third. An item whose
// key is already in a write in flight waits for that write: equal keys are written in arrival
// order and never race each other.
//
// The queue is bounded (rows and bytes waiting): past the bound a submission is refused at once,
// whole, with QueueFull — under overload callers hear "try again" in microseconds instead of
// waiting seconds in a queue that only grows, and what is accepted keeps a bounded wait.
//
// A write's callers are answered once the next write is on its way (answering overlaps with the
// database's work), unless the event loop runs late: when a poll phase is busy with thousands of
// sockets (an overload refusing most of them), the check phase where the deferred answers would go
// out comes seconds later, and accepted requests would wait longer than refused ones.
//
// The scheduler knows nothing of SQL: it is given the write (ingest/message-insert.ts for messages).

/** The queue is over its bound: nothing of the submission was taken. */
export class QueueFull extends Error {
  /** A hint for when to try again: about how long the queue takes to drain. */
  readonly retryAfterMs: number;

  constructor(retryAfterMs: number) {
    super("the ingest queue is full");
    this.name = "QueueFull";
    this.retryAfterMs = retryAfterMs;
  }
}

export interface GroupCommitOptions<T, R> {
  /** Writes a batch; resolves with one result per item, in order. */
  write: (batch: T[]) => Promise<R[]>;
  /** An item's serialisation key (equal keys never share or overlap writes); undefined: none. */
  keyOf: (item: T) => string | undefined;
  /** An item's size in bytes, for maxBytes. */
  sizeOf: (item: T) => number;
  /** How many rows an item writes, for maxRows (default 1). */
  rowsOf?: (item: T) => number;
  maxRows?: number;
  maxBytes?: number;
  /** Writes in flight at once (default 2). */
  writers?: number;
  /** Rows and bytes that may wait in the queue (not counting writes in flight); a submission
   * that would pass either is refused with QueueFull, unless the queue is empty. */
  maxQueuedRows?: number;
  maxQueuedBytes?: number;
}

/** The event loop counts as late when what follows a write's completion in the same loop
 * iteration takes longer than this. */
const LATE_MS = 50;

interface Waiting<T, R> {
  item: T;
  key: string | undefined;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<T, R> {
  readonly #write: (batch: T[]) => Promise<R[]>;
  readonly #keyOf: (item: T) => string | undefined;
  readonly #sizeOf: (item: T) => number;
  readonly #rowsOf: (item: T) => number;
  readonly #maxRows: number;
  readonly #maxBytes: number;
  readonly #writers: number;
  readonly #maxQueuedRows: number;
  readonly #maxQueuedBytes: number;
  #queue: Waiting<T, R>[] = [];
  #queuedRows = 0;
  #queuedBytes = 0;
  /** Rows written per millisecond, smoothed over recent writes: how fast the queue drains. */
  #drainPerMs = 0;
  #inFlight = 0;
  /** Keys of the items in writes in flight. */
  readonly #busyKeys = new Set<string>();
  /** Whether the event loop ran late when last looked at (see #look). */
  #late = false;
  #looking = false;

  constructor(options: GroupCommitOptions<T, R>) {
    this.#write = options.write;
    this.#keyOf = options.keyOf;
    this.#sizeOf = options.sizeOf;
    this.#rowsOf = options.rowsOf ?? (() => 1);
    this.#maxRows = options.maxRows ?? 1000;
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.#writers = options.writers ?? 2;
    this.#maxQueuedRows = options.maxQueuedRows ?? Infinity;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? Infinity;
  }

  /** Whether the queue is at its bound (a submission now would most likely be refused). */
  get full(): boolean {
    return this.#queuedRows >= this.#maxQueuedRows || this.#queuedBytes >= this.#maxQueuedBytes;
  }

  /** About how long the queue takes to drain, for a retry hint: 0.1 s to 5 s. */
  #drainMs(): number {
    const ms = this.#drainPerMs > 0 ? this.#queuedRows / this.#drainPerMs : 1000;
    return Math.min(5000, Math.max(100, Math.ceil(ms)));
  }

  /** Resolves per item once written; rejects (all of them) if their batch failed. Throws
   * QueueFull, taking none of them, when they would pass the queue's bound. */
  submit(items: readonly T[]): Promise<R>[] {
    let rows = 0;
    let bytes = 0;
    for (const item of items) {
      rows += this.#rowsOf(item);
      bytes += this.#sizeOf(item);
    }
    if (this.#queue.length > 0 && (this.#queuedRows + rows > this.#maxQueuedRows || this.#queuedBytes + bytes > this.#maxQueuedBytes)) {
      throw new QueueFull(this.#drainMs());
    }
    this.#queuedRows += rows;
    this.#queuedBytes += bytes;
    const promises = items.map((item) => new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, key: this.#keyOf(item), resolve, reject });
    }));
    this.#pump();
    return promises;
  }

  /** Starts statements while a writer is free and something can go. Returns how many started. A
   * further statement starts beside one in flight only for a backlog of at least a quarter of
   * maxRows: below that, waiting for the statement in flight makes one larger batch, which costs
   * Postgres and this process less per item than two small ones. */
  #pump(): number {
    let started = 0;
    while (this.#inFlight < this.#writers && this.#queue.length > 0) {
      if (this.#inFlight > 0 && this.#queue.length < this.#maxRows / 4) break;
      const batch = this.#take();
      if (batch.length === 0) break;
      this.#inFlight++;
      started++;
      void this.#run(batch);
    }
    return started;
  }

  /** The next batch in queue order, up to maxRows rows and maxBytes (always at least one item),
   * leaving queued every item whose
   * key is in flight (and, behind it, every later one with that key). */
  #take(): Waiting<T, R>[] {
    const queue = this.#queue;
    const batch: Waiting<T, R>[] = [];
    let held: Waiting<T, R>[] | undefined;
    let bytes = 0;
    let rows = 0;
    let i = 0;
    for (; i < queue.length && rows < this.#maxRows; i++) {
      const w = queue[i]!;
      if (w.key !== undefined && this.#busyKeys.has(w.key)) {
        (held ??= []).push(w);
        continue;
      }
      const size = this.#sizeOf(w.item);
      const itemRows = this.#rowsOf(w.item);
      if (batch.length > 0 && (bytes + size > this.#maxBytes || rows + itemRows > this.#maxRows)) break;
      bytes += size;
      rows += itemRows;
      batch.push(w);
    }
    this.#queue = held ? held.concat(queue.slice(i)) : queue.slice(i);
    this.#queuedRows -= rows;
    this.#queuedBytes -= bytes;
    return batch;
  }

  async #run(batch: Waiting<T, R>[]): Promise<void> {
    for (const w of batch) if (w.key !== undefined) this.#busyKeys.add(w.key);
    let settle: () => void;
    const started = performance.now();
    try {
      const results = await this.#write(batch.map((w) => w.item));
      let rows = 0;
      for (const w of batch) rows += this.#rowsOf(w.item);
      const rate = rows / Math.max(1, performance.now() - started);
      this.#drainPerMs = this.#drainPerMs === 0 ? rate : 0.8 * this.#drainPerMs + 0.2 * rate;
      settle = () => batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      settle = () => batch.forEach((w) => w.reject(err));
    }
    for (const w of batch) if (w.key !== undefined) this.#busyKeys.delete(w.key);
    this.#inFlight--;
    // When the next statement goes out now, answer this batch only after it is on its way, so
    // that answering (a response per request) overlaps with the database working on it instead
    // of delaying it. setImmediate runs after the promise jobs that hand it to the socket — and
    // after the rest of this poll phase, so not when the loop runs late.
    // The probe goes first: it measures the rest of this iteration without this batch's answers.
    const next = this.#pump();
    this.#look();
    if (next > 0 && !this.#late) setImmediate(settle);
    else settle();
  }

  /** Measures how long the rest of this loop iteration takes (up to its check phase), at most
   * one measurement at a time. */
  #look(): void {
    if (this.#looking) return;
    this.#looking = true;
    const from = performance.now();
    setImmediate(() => {
      this.#looking = false;
      this.#late = performance.now() - from > LATE_MS;
    });
  }
}
