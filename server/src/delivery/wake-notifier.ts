// Tells other server processes that new jobs exist (NOTIFY on the channel their dispatchers
// LISTEN on). NOTIFY costs a query and takes a lock at commit, so under load the notices are
// coalesced: at most one in flight, and at most one per `minGapMs`; a notice asked for meanwhile
// is sent when the gap ends, so no wake-up is lost.
import { sql, type DatabasePool } from "slonik";

export function wakeNotifier(pool: DatabasePool, channel: string, minGapMs = 20): () => void {
  let lastMs = 0;
  let scheduled = false;
  const send = async (): Promise<void> => {
    scheduled = false;
    lastMs = Date.now();
    await pool.query(sql.unsafe`SELECT pg_notify(${channel}, '')`).catch(() => {});
  };
  return () => {
    if (scheduled) return;
    scheduled = true;
    const wait = lastMs + minGapMs - Date.now();
    if (wait <= 0) void send();
    else setTimeout(() => void send(), wait);
  };
}
