// The ingest statement's answer when the connection to Postgres is lost after the statement was
// sent: it may have committed (the answer was lost on the way back) or not, and for a moment it may
// even still be running, or not yet read by its backend. E9001 promises "nothing was accepted", so
// that cannot be the answer until it is true. The batch's fate is settled on another connection:
// the session it was sent to (its backend pid, which the connection read with its first query and
// attaches to its errors: db/resilient-driver.ts) is
// terminated and waited for — after that its transaction has either committed or it never will —
// and what it stored is read back. A
// committed batch is answered as accepted, one that never committed with E9001; when the database
// cannot be asked, E9003 says so plainly.
import { randomUUID } from "node:crypto";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { isDatabaseUnavailable, KapselError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { HandOffReservation } from "../delivery/job-handoff.ts";
import { sessionOf } from "../db/resilient-driver.ts";
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
  try {
    return await pool.connect((connection) =>
      insertMessages(connection, messages, idempotencyWindowMs, `kapsel-ingest ${randomUUID()}`, handOff));
  } catch (err) {
    // The session the statement went to, known for its connection before the statement was sent:
    // a statement still in flight to Postgres, not yet read by its backend, shows in
    // pg_stat_activity as that session idle with its previous query, so it can only be found by
    // the session, never by its text. "none": the connection failed before it could send it.
    const session = sessionOf(err);
    if (!isDatabaseUnavailable(err) || neverSent(err) || session === "none") throw err;
    let settled: Accepted[] | undefined;
    try {
      if (session === undefined) throw new Error("the connection's session is not known", { cause: err });
      await endSession(pool, session);
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

/** Terminates the session the statement was sent to, if it is still there, and waits until it is
 * gone: then its transaction has either committed or never will. */
async function endSession(pool: DatabasePool, pid: number): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const alive = await pool.maybeOneFirst(sql.type(pidRow)`SELECT pid FROM pg_stat_activity WHERE pid = ${pid}`);
    if (alive === null) return;
    if (Date.now() > deadline) throw new Error(`session ${pid} of the lost ingest statement is still there`);
    await pool.query(sql.unsafe`SELECT pg_terminate_backend(${pid})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
