// A webhook relay on graphile-worker, as a Node team would write it: `POST /ingest` adds a job with
// the library's addJob (committed before the 202), and the same process runs the worker whose task
// POSTs the body to the destination with undici; a throw makes graphile-worker retry the job with
// its exponential backoff (10 attempts, as Kapsel's default).
//
// Tuned as graphile-worker's performance page does for throughput (its benchmark configuration):
// 24 concurrent jobs, a pool of 25 connections, a local queue of 500 jobs fetched per round trip,
// completions and failures batched with no added delay. Its per-job "Completed task" info log is
// turned off (warnings and errors only), as anyone running it at volume would.
//
// Environment: DATABASE_URL, DESTINATION_URL, PORT. Prints nothing on success; answers
// `GET /readyz` once it takes jobs. SIGTERM stops it gracefully.
import { Logger, run } from "graphile-worker";
import { deliver, serveIngest } from "./relay-http.ts";

const { DATABASE_URL, DESTINATION_URL, PORT } = process.env;
if (!DATABASE_URL || !DESTINATION_URL || !PORT) throw new Error("DATABASE_URL, DESTINATION_URL and PORT are required");
const destination = DESTINATION_URL;

const CONCURRENCY = 24;

const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile-worker] ${level}: ${message}`);
});

const runner = await run({
  connectionString: DATABASE_URL,
  concurrency: CONCURRENCY,
  maxPoolSize: CONCURRENCY + 1,
  noHandleSignals: true,
  logger,
  taskList: {
    deliver: async (payload, helpers) => {
      await deliver(destination, String(helpers.job.id), (payload as { body: string }).body);
    },
  },
  preset: {
    worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
  },
});

const server = await serveIngest(Number(PORT), async (body) => {
  const job = await runner.addJob("deliver", { body }, { maxAttempts: 10 });
  return String(job.id);
});

process.once("SIGTERM", async () => {
  server.close();
  await runner.stop();
  process.exit(0);
});
