// Past saturation ingest pushes back at once: with the database write held up, requests beyond the
// queue's bound get E9002 (HTTP 503 + Retry-After; RPC Unavailable + RetryInfo) without waiting, and
// nothing of theirs is stored; those that were queued are stored and acknowledged once the write
// goes through.
import net from "node:net";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { IngestService } from "@kapsel/contracts/ingest";
import { RetryInfoSchema } from "@kapsel/contracts/error-details";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createTestDatabase } from "../../test/support/database.ts";
import { addEndpoint, kapselCode, until } from "../../test/support/delivery.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, spawnServer, startTestServer, type ServerProcess, type TestServer } from "../../test/support/server.ts";

let server: TestServer;
let db: pg.Client;
beforeAll(async () => {
  server = await startTestServer({ KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_INGEST_QUEUE_MAX_ROWS: "6" });
  db = await connect(server.databaseUrl);
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
});

describe("overload", () => {
  it("requests past the queue's bound are refused at once with E9002 and a retry hint; the queued ones are stored", async () => {
    const tenant = await createTenant(server.url, ADMIN_TOKEN, "overload");
    const { endpointId } = await addEndpoint(server.url, tenant.apiKey, "https://93.184.216.34/");
    // Hold every insert behind a lock, so the queue fills.
    const blocker = await connect(server.databaseUrl);
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
    try {
      const send = (i: number) => fetch(`${server.url}/ingest/${endpointId}`, {
        method: "POST", headers: { "content-type": "application/json", "idempotency-key": `k-${i}` }, body: `{"n":${i}}`,
      });
      // One write goes in flight (held), then 3 messages (2 rows each) fill the queue of 6 rows.
      const held = [send(0)];
      await new Promise((r) => setTimeout(r, 200));
      for (let i = 1; i <= 3; i++) held.push(send(i));
      await new Promise((r) => setTimeout(r, 200));
      // Answered while the held writes still wait on the lock: refused without waiting for them.
      const refused = await Promise.all([4, 5, 6, 7].map(send));
      for (const res of refused) {
        expect(res.status).toBe(503);
        expect(((await res.json()) as { code: string }).code).toBe("E9002");
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      }

      const client = createClient(IngestService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
      const err = await client.ingest({ endpointId, payload: new TextEncoder().encode("{}") }, { headers: { authorization: `Bearer ${tenant.apiKey}` } }).catch((e: unknown) => e);
      expect(kapselCode(err)).toBe("E9002");
      expect((err as ConnectError).findDetails(RetryInfoSchema)).toHaveLength(1);

      await blocker.query("COMMIT");
      const acknowledged = await Promise.all(held);
      expect(acknowledged.map((r) => r.status)).toEqual([202, 202, 202, 202]);
    } finally {
      await blocker.end();
    }
    const stored = await db.query<{ k: string }>("SELECT idempotency_key AS k FROM messages WHERE tenant_id = $1 ORDER BY k", [tenant.id]);
    expect(stored.rows.map((r) => r.k)).toEqual(["k-0", "k-1", "k-2", "k-3"]);
  });
});

describe("in-flight bound", () => {
  it("past KAPSEL_INGEST_MAX_IN_FLIGHT messages being accepted, the next request is refused at once with E9002", async () => {
    const small = await startTestServer({ KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_INGEST_MAX_IN_FLIGHT: "2" });
    const blocker = await connect(small.databaseUrl);
    try {
      const tenant = await createTenant(small.url, ADMIN_TOKEN, "in-flight");
      const { endpointId } = await addEndpoint(small.url, tenant.apiKey, "https://93.184.216.34/");
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
      const send = () => fetch(`${small.url}/ingest/${endpointId}`, { method: "POST", body: "{}" });
      const held = [send(), send()];
      await new Promise((r) => setTimeout(r, 200));
      const third = await send();
      expect([third.status, ((await third.json()) as { code: string }).code]).toEqual([503, "E9002"]);
      await blocker.query("COMMIT");
      expect((await Promise.all(held)).map((r) => r.status)).toEqual([202, 202]);
      // Room again.
      expect((await send()).status).toBe(202);
    } finally {
      await blocker.end();
      await small.stop();
    }
  });
});

describe("in-flight byte bound", () => {
  it("past KAPSEL_INGEST_MAX_IN_FLIGHT_BYTES held by bodies in flight, a declared body is refused with E9002 unread; one alone is always admitted", async () => {
    const small = await startTestServer({ KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_INGEST_MAX_IN_FLIGHT_BYTES: "2048" });
    const smallDb = await connect(small.databaseUrl);
    const socket = net.connect(small.port, "127.0.0.1");
    try {
      const tenant = await createTenant(small.url, ADMIN_TOKEN, "in-flight-bytes");
      const { endpointId } = await addEndpoint(small.url, tenant.apiKey, "https://93.184.216.34/");
      const send = (bytes: number) => fetch(`${small.url}/ingest/${endpointId}`, { method: "POST", body: JSON.stringify({ f: "x".repeat(bytes - 8) }) });
      const stored = async () => Number((await smallDb.query("SELECT count(*) FROM messages WHERE tenant_id = $1", [tenant.id])).rows[0].count);
      // One alone in flight is admitted whatever it declares (up to the payload limit).
      expect((await send(3000)).status).toBe(202);

      // A sender holds 1 500 declared bytes: its body is still coming.
      let received = "";
      socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
      socket.on("error", () => {});
      const body = JSON.stringify({ f: "y".repeat(1492) });
      socket.write(`POST /ingest/${endpointId} HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 100)}`);
      // 1 500 + 1 000 > 2 048: refused at once, nothing stored; 1 500 + 300 fits.
      const refused = await until("the held body's reservation", async () => {
        const r = await send(1000);
        return r.status === 503 ? r : ((await r.text()), undefined);
      });
      expect(((await refused.json()) as { code: string }).code).toBe("E9002");
      expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
      const before = await stored();
      expect((await send(300)).status).toBe(202);
      expect(await stored()).toBe(before + 1);

      // The held body completes and is accepted; its bytes are free again.
      socket.write(body.slice(100));
      await until("the held request's answer", () => (received.includes("\r\n\r\n") ? true : undefined));
      expect(received.slice(9, 12)).toBe("202");
      expect((await send(1000)).status).toBe(202);
    } finally {
      socket.destroy();
      await smallDb.end();
      await small.stop();
    }
  });
});

describe("refusals under overload", () => {
  // A refusal must cost about what answering at all costs: the sender keeps its connection (a new
  // one per refusal made refusing dearer than accepting), and the process does not write a log
  // line per refusal (at the default level that was most of a refusal's cost).
  let spawned: ServerProcess;
  let blocker: pg.Client;
  let endpointId: string;
  let apiKey: string;
  let held: Promise<Response>;
  beforeAll(async () => {
    const databaseUrl = await createTestDatabase();
    spawned = await spawnServer({
      DATABASE_URL: databaseUrl, KAPSEL_DELIVERY_ENABLED: "false", KAPSEL_INGEST_MAX_IN_FLIGHT: "1", KAPSEL_LOG_LEVEL: "info",
      // A body's pauses are bounded far below an idle connection's, to tell the two apart.
      KAPSEL_HTTP_BODY_IDLE_TIMEOUT_MS: "1000", KAPSEL_HTTP_IDLE_TIMEOUT_MS: "60000",
    });
    const tenant = await createTenant(spawned.url, ADMIN_TOKEN, "refusals");
    apiKey = tenant.apiKey;
    ({ endpointId } = await addEndpoint(spawned.url, tenant.apiKey, "https://93.184.216.34/"));
    blocker = await connect(databaseUrl);
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
    // The one request in flight, held by the lock: every other is refused at the door.
    held = fetch(`${spawned.url}/ingest/${endpointId}`, { method: "POST", body: "{}" });
    await new Promise((r) => setTimeout(r, 200));
    // A probe that arrived first would itself be held: each gives up after a while.
    await until("the held request in flight", async () => {
      const r = await fetch(`${spawned.url}/ingest/${endpointId}`, { method: "POST", body: "{}", signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      return r?.status === 503 ? true : undefined;
    });
  });
  afterAll(async () => {
    await blocker?.query("COMMIT").catch(() => {});
    await held?.catch(() => {});
    await blocker?.end();
    await spawned?.stop();
  });

  it("a small body refused with E9002 leaves the connection open for the next request", async () => {
    const body = "x".repeat(1024);
    const request = `POST /ingest/${endpointId} HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const answers = await exchange(spawned.port, Array.from({ length: 20 }, () => request));
    expect(answers.closed).toBe(false);
    expect(answers.responses).toHaveLength(20);
    for (const r of answers.responses) {
      expect(r.status).toBe(503);
      expect(r.head).toMatch(/\r\nretry-after: \d+/i);
      expect(r.head).not.toMatch(/\r\nconnection: close/i);
      expect(JSON.parse(r.body)).toMatchObject({ code: "E9002" });
    }
  });

  it("a body that arrives after the answer is dropped, and the next request on the connection is answered", async () => {
    const body = "x".repeat(1024);
    const head = `POST /ingest/${endpointId} HTTP/1.1\r\nHost: k\r\nContent-Length: ${body.length}\r\n\r\n`;
    // The first request's body goes out only once its answer is in, glued to the second request.
    const answers = await exchange(spawned.port, [head, body + head + body]);
    expect(answers.closed).toBe(false);
    expect(answers.responses.map((r) => r.status)).toEqual([503, 503]);
    expect(answers.responses.map((r) => (JSON.parse(r.body) as { code: string }).code)).toEqual(["E9002", "E9002"]);
  });

  it("the rest of a refused body may pause only as long as any body: a trickle is cut off", async () => {
    const socket = net.connect(spawned.port, "127.0.0.1");
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    socket.on("error", () => {});
    const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(performance.now())));
    socket.write(`POST /ingest/${endpointId} HTTP/1.1\r\nHost: k\r\nContent-Length: 4096\r\n\r\n0123456789`);
    await until("the refusal", async () => (received.includes("\r\n\r\n") ? true : undefined));
    expect(received.slice(9, 12)).toBe("503");
    const answered = performance.now();
    // One more byte now and then, each pause longer than a body's (1 s) and shorter than an idle
    // connection's (60 s): the connection must close at the first long pause.
    const trickle = setInterval(() => socket.write("x"), 1500);
    try {
      const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Infinity), 15_000))]);
      expect(at - answered).toBeLessThan(15_000);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  });

  it("a large body is not read: the answer says the connection closes, and it does", async () => {
    const request = `POST /ingest/${endpointId} HTTP/1.1\r\nHost: k\r\nContent-Length: ${8 * 1024 * 1024}\r\n\r\n${"x".repeat(1000)}`;
    const answers = await exchange(spawned.port, [request]);
    expect(answers.responses.map((r) => r.status)).toEqual([503]);
    expect(answers.responses[0]!.head).toMatch(/\r\nconnection: close/i);
    expect(answers.closed).toBe(true);
  });

  it("an IngestBatch is refused from its headers: answered while its body has not been sent", async () => {
    const request = `POST /kapsel.v1.IngestService/IngestBatch HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer ${apiKey}\r\nContent-Length: ${4 * 1024 * 1024}\r\n\r\n{"events":[`;
    const answers = await exchange(spawned.port, [request]);
    expect(answers.responses.map((r) => r.status)).toEqual([503]);
    expect(JSON.parse(answers.responses[0]!.body)).toMatchObject({ code: "unavailable", details: [expect.anything(), expect.anything()] });
  });

  interface Line { level: string; msg: string; time: string; result?: string; refused?: Record<string, number> }
  const lines = (): Line[] => spawned.output().split("\n").flatMap((l) => {
    try {
      return l.startsWith("{") ? [JSON.parse(l) as Line] : [];
    } catch {
      return []; // a line still being written
    }
  });
  const summaries = () => lines().filter((l) => l.msg.startsWith("requests refused under load"));
  const refusedSoFar = () => summaries().reduce((n, l) => n + (l.refused?.E9002 ?? 0), 0);
  /** The E9002 refusals counted in summaries once earlier ones have all been summed up. */
  const settledRefusals = () => until("earlier refusals counted", async () => {
    const n = refusedSoFar();
    await new Promise((r) => setTimeout(r, 1200));
    return refusedSoFar() === n ? n : undefined;
  });

  it("each refusal is logged at debug; a summary at warn says how many, at most once a second", async () => {
    const before = await settledRefusals();
    // 30 refusals spread over about three seconds.
    for (let i = 0; i < 30; i++) {
      const r = await fetch(`${spawned.url}/ingest/${endpointId}`, { method: "POST", body: "{}" });
      expect(r.status).toBe(503);
      await r.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await until("a summary of the 30 refusals", async () => (refusedSoFar() >= before + 30 ? true : undefined));
    const found = summaries();
    expect(found.every((l) => l.level === "warn")).toBe(true);
    const times = found.map((l) => Date.parse(l.time));
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(990);
    expect(found.length).toBeGreaterThanOrEqual(2);
    expect(lines().filter((l) => l.msg === "request" && l.result === "E9002")).toEqual([]);
  });

  it("the refusals of the last part-second are counted in a summary written at shutdown (last: it stops the server)", async () => {
    const before = await settledRefusals();
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${spawned.url}/ingest/${endpointId}`, { method: "POST", body: "{}" });
      expect(r.status).toBe(503);
      await r.arrayBuffer();
    }
    // Stopped well within the second those five started: their summary is not due yet.
    await blocker.query("COMMIT");
    await held;
    await spawned.stop();
    expect(refusedSoFar()).toBe(before + 5);
  });
});

interface RawResponse {
  status: number;
  head: string;
  body: string;
}

/** Writes each request on one connection after the previous answer; resolves with the answers and
 * whether the server closed the connection (waiting briefly after the last answer). */
function exchange(port: number, requests: string[]): Promise<{ responses: RawResponse[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const responses: RawResponse[] = [];
    let buf = Buffer.alloc(0);
    let closed = false;
    let settle: NodeJS.Timeout | undefined;
    const finish = () => {
      socket.destroy();
      resolve({ responses, closed });
    };
    socket.on("error", () => {});
    socket.on("close", () => {
      closed = true;
      if (responses.length === requests.length) {
        clearTimeout(settle);
        finish();
      } else reject(new Error(`closed after ${responses.length} of ${requests.length} answers`));
    });
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buf.toString("latin1", 0, end);
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        responses.push({ status: Number(head.slice(9, 12)), head, body: buf.toString("utf8", end + 4, end + 4 + length) });
        buf = buf.subarray(end + 4 + length);
        if (responses.length < requests.length) socket.write(requests[responses.length]!);
        else settle = setTimeout(finish, 300);
      }
    });
    socket.write(requests[0]!);
  });
}
