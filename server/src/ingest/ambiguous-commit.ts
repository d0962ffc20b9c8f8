// The ingest statement's answer when the connection to Postgres is lost after the statement was
// sent: it may have committed (the answer was lost on the way back) or not, and for a moment it may
// even still be running. E9001 promises "nothing was accepted", so that cannot be the answer until
// it is true. The batch's fate is settled on another connection: any session still running the
// statement (found by the marker that leads its text) is terminated and waited for — after that
// its transaction has either committed or it never will — and what it stored is read back. A
// committed batch is answered as accepted, one that never committed with E9001; when the database
// cannot be asked, E9003 says so plainly.
import { randomUUID } from "node:crypto";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { isDatabaseUnavailable, KapselError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { HandOffReservation } from "../delivery/job-handoff.ts";
import { answerFromStored, insertMessages, type Accepted, type Inserted, type NewMessage } from "./message-insert.ts";

/** How long to wait for a lost session to end after terminating it. */
const SETTLE_TIMEOUT_MS = 5_000;

const pidRow = z.object({ pid: z.number() });

/** Errors raised before a statement could have reached the database: no connection was had. */
function neverSent(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e.constructor.name === "ConnectionError" || /timeout exceeded when trying to connect/i.test(e.message)) return true;
    if ((e as { code?: unknown }).code === "ECONNREFUSED") return true;
  }
  return false;
}

/** insertMessages, with a lost connection resolved before anyone is answered. A batch settled that
 * way hands nothing over: the leases it may have taken expire and a claim takes the jobs. */
export async function insertSettled(pool: DatabasePool, messages: readonly NewMessage[], idempotencyWindowMs: number, log: Logger,
  handOff?: HandOffReservation): Promise<Inserted> {
  const marker = `kapsel-ingest ${randomUUID()}`;
  try {
    return await insertMessages(pool, messages, idempotencyWindowMs, marker, handOff);
  } catch (err) {
    if (!isDatabaseUnavailable(err) || neverSent(err)) throw err;
    let settled: Accepted[] | undefined;
    try {
      await endSessionsRunning(pool, marker);
      settled = await answerFromStored(pool, messages);
    } catch (checkErr) {
      log.warn({ err: checkErr, messages: messages.length }, "ingest commit outcome unknown: the database could not be asked after the connection was lost");
      throw new KapselError("E9003", undefined, { cause: err });
    }
    log.warn({ messages: messages.length, committed: settled !== undefined }, "ingest connection lost during the commit; outcome settled on another connection");
    if (settled === undefined) throw new KapselError("E9001", undefined, { cause: err });
    return { accepted: settled, handed: [] };
  }
}

/** Terminates any session still running the statement that `marker` leads, and waits until none
 * is left. A session whose statement has ended shows as idle (or is gone). */
async function endSessionsRunning(pool: DatabasePool, marker: string): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  const pattern = `%/* '${marker}' */%`;
  for (;;) {
    const running = await pool.anyFirst(sql.type(pidRow)`
      SELECT pid FROM pg_stat_activity
      WHERE pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle' AND query LIKE ${pattern}`);
    if (running.length === 0) return;
    if (Date.now() > deadline) throw new Error(`sessions ${running.join(", ")} still run the lost ingest statement`);
    await pool.query(sql.unsafe`SELECT pg_terminate_backend(pid) FROM unnest(${sql.array(running, "int4")}) AS pid`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
