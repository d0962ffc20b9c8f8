// A webhook relay on pg-boss, as a Node team would write it: `POST /ingest` sends a job with the
// library's send (committed before the 202), and the same process works the queue, POSTing each
// body to the destination with undici; a failed delivery is failed back to pg-boss, which retries
// it with exponential backoff (9 retries: 10 attempts, as Kapsel's default).
//
// Tuned as pg-boss's docs suggest for throughput and latency: LISTEN/NOTIFY on (the instance's
// `useListenNotify` and the queue's `notify`, so workers wake when a job is created instead of
// polling every 2 s), batches of 100 jobs per fetch delivered concurrently and settled per job
// (`perJobResults`), fetching again at once while batches come back full (`burstWhenBatchFull`),
// 4 workers in the process (`localConcurrency`), and a pool of 25 connections (default 10). Retries
// come due later and are not announced by NOTIFY, so the backstop poll stays at pg-boss's usual
// 2 s (`notifyPollingIntervalSeconds`, 30 s by default with NOTIFY on) to retry on time.
//
// Environment: DATABASE_URL, DESTINATION_URL, PORT. Answers `GET /readyz` once it takes jobs.
// SIGTERM stops it gracefully.
import { PgBoss } from "pg-boss";
import { deliver, serveIngest } from "./relay-http.ts";

const { DATABASE_URL, DESTINATION_URL, PORT } = process.env;
if (!DATABASE_URL || !DESTINATION_URL || !PORT) throw new Error("DATABASE_URL, DESTINATION_URL and PORT are required");
const destination = DESTINATION_URL;
const QUEUE = "deliver";

const boss = new PgBoss({ connectionString: DATABASE_URL, max: 25, useListenNotify: true });
boss.on("error", (err) => console.error(`[pg-boss] ${err.message}`));
await boss.start();
await boss.createQueue(QUEUE, { notify: true, retryLimit: 9, retryDelay: 1, retryBackoff: true });

await boss.work<{ body: string }>(
  QUEUE,
  { batchSize: 100, localConcurrency: 4, perJobResults: true, burstWhenBatchFull: true, notifyPollingIntervalSeconds: 2 },
  (jobs) => Promise.all(jobs.map(async (job) => {
    try {
      await deliver(destination, job.id, job.data.body);
      return { id: job.id, status: "completed" as const };
    } catch (err) {
      return { id: job.id, status: "failed" as const, output: { message: (err as Error).message } };
    }
  })),
);

const server = await serveIngest(Number(PORT), async (body) => {
  const id = await boss.send(QUEUE, { body });
  if (id === null) throw new Error("pg-boss did not create the job");
  return id;
});

process.once("SIGTERM", async () => {
  server.close();
  await boss.stop({ graceful: true });
  process.exit(0);
});
