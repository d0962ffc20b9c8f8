// A TCP proxy between a server under test and Postgres that can cut one connection at the worst
// moment: right around a commit. It forwards bytes untouched, watches what clients send for a
// marker (statement text), and when armed cuts the connection that sent it in one of three ways:
//
//   before   the statement never reaches Postgres (nothing was written; the client sees a lost
//            connection);
//   during   the statement reaches Postgres, which goes on to run and commit it, but the client's
//            side is cut at once (the client cannot know whether it committed, and for a moment it
//            may still be running);
//   after    Postgres runs it and answers up to ReadyForQuery, and that answer is withheld: the
//            commit happened, the client never hears so.
//
// With `atCommit`, the cut is made at the COMMIT that ends the transaction in which the marker was
// sent (explicit transactions), instead of at the marker's own statement (autocommit).
import net from "node:net";
import type { AddressInfo } from "node:net";

export type CutMoment = "before" | "during" | "after";

interface Arming {
  marker: string;
  moment: CutMoment;
  atCommit: boolean;
  /** Stays armed after a cut (until stopped). */
  repeat: boolean;
  done: () => void;
}

const COMMIT = Buffer.from("COMMIT\0");
const ROLLBACK = Buffer.from("ROLLBACK\0");
const START = Buffer.from("START TRANSACTION\0");
const BEGIN = Buffer.from("BEGIN\0");

export interface PgProxy {
  /** The upstream URL with host and port replaced by the proxy's. */
  url: string;
  /** Cuts the next connection that sends `marker` (see the file comment); resolves once cut. */
  cut(marker: string, moment: CutMoment, options?: { atCommit?: boolean }): Promise<void>;
  /** Cuts every connection that sends `marker` until stopped. */
  cutEvery(marker: string, moment: CutMoment, options?: { atCommit?: boolean }): { stop(): void; readonly count: number };
  /** Connections cut so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

export interface PgProxyOptions {
  /** Drop the `options` parameter from each connection's startup message, as a connection pooler
   * that does not pass it on would. */
  dropStartupOptions?: boolean;
}

/** A startup message without its `options` parameter (other messages pass unchanged). */
function withoutStartupOptions(chunk: Buffer): Buffer {
  if (chunk.length < 8 || chunk.readUInt32BE(0) !== chunk.length || chunk.readUInt32BE(4) !== 196608) return chunk;
  const fields = chunk.subarray(8, chunk.length - 1).toString("utf8").split("\0");
  const kept: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] !== "options") kept.push(fields[i]!, fields[i + 1]!);
  const body = Buffer.from(kept.map((f) => `${f}\0`).join("") + "\0");
  const out = Buffer.alloc(8 + body.length);
  out.writeUInt32BE(out.length, 0);
  out.writeUInt32BE(196608, 4);
  body.copy(out, 8);
  return out;
}

export async function startPgProxy(upstreamUrl: string, proxyOptions: PgProxyOptions = {}): Promise<PgProxy> {
  const upstream = new URL(upstreamUrl);
  const armings: Arming[] = [];
  const sockets = new Set<net.Socket>();
  let cuts = 0;

  const server = net.createServer((client) => {
    const db = net.connect(Number(upstream.port || 5432), upstream.hostname);
    sockets.add(client);
    sockets.add(db);
    client.on("close", () => sockets.delete(client));
    db.on("close", () => sockets.delete(db));
    client.on("error", () => db.destroy());
    db.on("error", () => client.destroy());

    // Client → Postgres: a short tail of earlier bytes is kept so that a marker split across two
    // TCP chunks is still seen.
    let tail = Buffer.alloc(0);
    let armed: Arming | undefined;
    // Whether the connection is inside an explicit transaction (slonik opens them with START
    // TRANSACTION): an `atCommit` marker counts only there.
    let inTransaction = false;
    // Postgres → client: withheld from when the cut statement was sent.
    let withholding = false;
    let serverBuffer = Buffer.alloc(0);

    const cutClient = () => {
      cuts++;
      client.destroy();
      armed!.done();
    };

    let first = true;
    client.on("data", (received: Buffer) => {
      const chunk = first && proxyOptions.dropStartupOptions ? withoutStartupOptions(received) : received;
      first = false;
      const seen = Buffer.concat([tail, chunk]);
      // Only a marker that ends in this chunk counts (one wholly in the tail was seen before).
      const before = tail.length;
      const from = (marker: string) => Math.max(0, before - Buffer.byteLength(marker) + 1);
      tail = seen.subarray(Math.max(0, seen.length - 256));
      let armedNow = false;
      if (chunk.includes(START) || chunk.includes(BEGIN)) inTransaction = true;
      if (!armed) {
        const i = armings.findIndex((a) => (!a.atCommit || inTransaction) && seen.includes(a.marker, from(a.marker)));
        if (i >= 0) {
          armed = armings[i]!.repeat ? armings[i]! : armings.splice(i, 1)[0]!;
          armedNow = true;
        }
      }
      // A COMMIT or ROLLBACK is one small write (Parse/Bind/Execute/Sync), never split.
      if (armed?.atCommit && !armedNow && chunk.includes(ROLLBACK)) {
        if (!armed.repeat) armings.push(armed);
        armed = undefined;
      }
      const ends = chunk.includes(COMMIT) || chunk.includes(ROLLBACK);
      const trigger = armed !== undefined && (armed.atCommit ? !armedNow && chunk.includes(COMMIT) : armedNow);
      if (ends) inTransaction = false;
      if (!trigger) {
        db.write(chunk);
        return;
      }
      if (armed!.moment === "before") {
        db.destroy();
        cutClient();
        return;
      }
      withholding = true;
      db.write(chunk);
      // "during": Postgres finishes on its own; its answer goes nowhere.
      if (armed!.moment === "during") cutClient();
    });

    db.on("data", (chunk: Buffer) => {
      if (!withholding) {
        client.write(chunk);
        return;
      }
      // Withheld: wait for ReadyForQuery ('Z'), which Postgres sends once the commit is done.
      serverBuffer = Buffer.concat([serverBuffer, chunk]);
      let at = 0;
      while (serverBuffer.length - at >= 5) {
        const type = serverBuffer[at]!;
        const length = serverBuffer.readUInt32BE(at + 1);
        if (serverBuffer.length - at < 1 + length) break;
        at += 1 + length;
        if (type === 0x5a) {
          db.end();
          if (!client.destroyed) cutClient();
          return;
        }
      }
      serverBuffer = serverBuffer.subarray(at);
    });
    client.on("close", () => {
      if (!withholding) db.end();
    });
    db.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const url = new URL(upstreamUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);

  return {
    url: url.toString(),
    get cuts() {
      return cuts;
    },
    cut(marker, moment, options = {}) {
      return new Promise<void>((resolve) => armings.push({ marker, moment, atCommit: options.atCommit ?? false, repeat: false, done: resolve }));
    },
    cutEvery(marker, moment, options = {}) {
      let count = 0;
      const arming: Arming = { marker, moment, atCommit: options.atCommit ?? false, repeat: true, done: () => count++ };
      armings.push(arming);
      return {
        stop: () => {
          const i = armings.indexOf(arming);
          if (i >= 0) armings.splice(i, 1);
        },
        get count() {
          return count;
        },
      };
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
