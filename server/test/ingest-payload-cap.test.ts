// The real default cap (10 MiB): on the gateway exactly the cap is accepted and stored whole, one
// byte more is refused with 413 E1001 — whether the sender declares the size up front
// (Content-Length) or streams it (chunked), in which case the cap is enforced while reading. The
// same cap holds for an RPC payload.
import { randomFillSync } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../test/support/database.ts";
import { bearer, errorInfos, failure, unary } from "../../test/support/grpc.ts";
import { ingestClient } from "../../test/support/grpc-ingest.ts";
import { countEvents, createEndpoint, INGEST_ONLY, postIngest, postStreamed } from "../../test/support/ingest.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, startTestServer, type TestServer } from "../../test/support/server.ts";

const MiB = 1024 * 1024;
const CAP = 10 * MiB;

let server: TestServer;
let db: pg.Client;
let apiKey: string;
const cap = randomFillSync(Buffer.alloc(CAP));
const overCap = Buffer.concat([cap, Buffer.from([0x2a])]);
beforeAll(async () => {
  server = await startTestServer(INGEST_ONLY);
  db = await connect(server.databaseUrl);
  apiKey = (await createTenant(server.url, ADMIN_TOKEN)).apiKey;
});
afterAll(async () => {
  await db?.end();
  await server?.stop();
});

/** The body in 64 KiB chunks, sent without a Content-Length. */
function* chunked(body: Buffer): Generator<Buffer> {
  for (let i = 0; i < body.length; i += 64 * 1024) yield body.subarray(i, i + 64 * 1024);
}

async function storedPayloadMatches(eventId: string, body: Buffer): Promise<boolean> {
  const r = await db.query<{ same: boolean }>("SELECT m.payload = $2::bytea AS same FROM events e JOIN messages m ON m.id = e.message_id WHERE e.id = $1", [eventId, body]);
  return r.rows[0]?.same === true;
}

describe("the 10 MiB default payload cap on the gateway", () => {
  it("exactly 10 MiB with Content-Length is accepted and stored whole", async () => {
    const endpointId = await createEndpoint(server.url, apiKey);
    const r = await postIngest(server.url, endpointId, cap);
    expect(r.status).toBe(202);
    expect(await storedPayloadMatches(r.body.event_id, cap)).toBe(true);
  });

  it("exactly 10 MiB streamed without Content-Length is accepted and stored whole", async () => {
    const endpointId = await createEndpoint(server.url, apiKey);
    const r = await postStreamed(server.url, endpointId, chunked(cap));
    expect(r.status).toBe(202);
    expect(await storedPayloadMatches(r.body.event_id, cap)).toBe(true);
  });

  it("10 MiB + 1 with Content-Length is refused with 413 E1001 and nothing is stored", async () => {
    const endpointId = await createEndpoint(server.url, apiKey);
    const r = await postStreamed(server.url, endpointId, chunked(overCap), { "content-length": String(overCap.length) });
    expect([r.status, r.body.code]).toEqual([413, "E1001"]);
    expect(await countEvents(db, endpointId)).toBe(0);
  });

  it("10 MiB + 1 streamed without Content-Length is refused with 413 E1001 and nothing is stored", async () => {
    const endpointId = await createEndpoint(server.url, apiKey);
    const r = await postStreamed(server.url, endpointId, chunked(overCap));
    expect([r.status, r.body.code]).toEqual([413, "E1001"]);
    expect(await countEvents(db, endpointId)).toBe(0);
  });

  it("10 MiB + 1 sent whole by fetch (which reads the answer only after sending) still gets the 413", async () => {
    const endpointId = await createEndpoint(server.url, apiKey);
    const r = await postIngest(server.url, endpointId, overCap);
    expect([r.status, r.body.code]).toEqual([413, "E1001"]);
    expect(await countEvents(db, endpointId)).toBe(0);
  });

  it("an RPC payload of exactly 10 MiB is accepted; 10 MiB + 1 is INVALID_ARGUMENT E1001", async () => {
    const endpointId = await createEndpoint(server.url, apiKey);
    const client = ingestClient(`127.0.0.1:${server.port}`);
    try {
      const ok = await unary<{ eventId: string }>(client, "Ingest", { endpointId, payload: cap }, bearer(apiKey));
      expect(await storedPayloadMatches(ok.eventId, cap)).toBe(true);
      const err = await failure(unary(client, "Ingest", { endpointId, payload: overCap }, bearer(apiKey)));
      expect([err.code, errorInfos(err).map((i) => i.reason)]).toEqual([grpc.status.INVALID_ARGUMENT, ["E1001"]]);
      expect(await countEvents(db, endpointId)).toBe(1);
    } finally {
      client.close();
    }
  });
});
