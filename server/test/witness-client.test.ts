// The log's side of add-checkpoint against witnesses that answer badly: a loopback HTTP server
// plays the witness and answers what a broken or hostile one might — wrong or foreign cosignature
// lines, garbage, 409s that are not tlog sizes, oversized or endless bodies, redirects, silence.
// Every answer becomes a bounded failure reason, nothing unverified is ever accepted, and no
// exchange outlives its timeout. (kapsel-witness itself answers correctly; see witnessing.test.ts.)
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkpointBody, logKeyFromSeed, signCheckpoint } from "../src/attestation/log-key.ts";
import { addCheckpoint, addCheckpointBody, MAX_ANSWER_BYTES, type Exchange } from "../src/attestation/witnessing/witness-client.ts";
import { parseWitnesses, type ConfiguredWitness } from "../src/attestation/witnessing/witness-config.ts";
import { WitnessKey } from "../../witness/src/witness-key.ts";
import { freePort } from "../src/free-port.ts";

const ORIGIN = "client.test.example/log";
const logKey = logKeyFromSeed(ORIGIN, Buffer.alloc(32, 1));
const body = checkpointBody(ORIGIN, 12, Buffer.alloc(32, 2));
const note = signCheckpoint(logKey, body, 1_700_000_000);
const witnessKey = new WitnessKey("witness.client.test", Buffer.alloc(32, 4));
const strangerKey = new WitnessKey("stranger.client.test", Buffer.alloc(32, 5));
const text = new TextEncoder().encode(body);

type Reply = (req: http.IncomingMessage, res: http.ServerResponse) => void;
let reply: Reply;
let received: string[] = [];
let server: http.Server;
let witness: ConfiguredWitness;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push(Buffer.concat(chunks).toString());
      reply(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/prefix/`;
  witness = parseWitnesses(`${url} ${witnessKey.vkey}`, undefined).witnesses[0]!;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const answer = (status: number, payload: string, headers: Record<string, string> = { "content-type": "text/plain" }): Reply => (_req, res) => {
  res.writeHead(status, headers).end(payload);
};

async function exchange(replyWith: Reply, timeoutMs = 2000): Promise<Exchange> {
  reply = replyWith;
  received = [];
  return addCheckpoint(witness, { oldSize: 5, proof: [Buffer.alloc(32, 7), Buffer.alloc(32, 8)], note }, timeoutMs);
}

describe("add-checkpoint as the log sends it", () => {
  it("POSTs old, the proof lines, an empty line and the signed checkpoint to <prefix>/add-checkpoint", async () => {
    let path = "";
    await exchange((req, res) => {
      path = req.url ?? "";
      answer(409, "5\n", { "content-type": "text/x.tlog.size" })(req, res);
    });
    expect(path).toBe("/prefix/add-checkpoint");
    expect(received).toEqual([`old 5\n${Buffer.alloc(32, 7).toString("base64")}\n${Buffer.alloc(32, 8).toString("base64")}\n\n${note}`]);
    expect(addCheckpointBody({ oldSize: 0, proof: [], note })).toBe(`old 0\n\n${note}`);
  });
});

describe("a witness's answer", () => {
  it("200 with its valid line (among lines of other keys) is a cosignature, with its time", async () => {
    const line = witnessKey.cosign(text, 1_700_000_100n);
    const result = await exchange(answer(200, `${strangerKey.cosign(text, 1n)}${line}`));
    expect(result).toEqual({ kind: "cosigned", line, timestamp: 1_700_000_100n });
  });

  it.each([
    ["its line over another checkpoint", () => witnessKey.cosign(new TextEncoder().encode(checkpointBody(ORIGIN, 13, Buffer.alloc(32, 2))), 9n), "bad_cosignature"],
    ["only another key's line", () => strangerKey.cosign(text, 9n), "bad_cosignature"],
    ["its line with time 0", () => witnessKey.cosign(text, 0n), "bad_cosignature"],
    ["not a signature line", () => "cosigned!\n", "bad_response"],
    ["no final newline", () => witnessKey.cosign(text, 9n).trimEnd(), "bad_response"],
    ["seventeen lines", () => strangerKey.cosign(text, 9n).repeat(17), "bad_response"],
  ])("200 with %s is refused (%s)", async (_what, payload, reason) => {
    expect(await exchange(answer(200, payload()))).toMatchObject({ kind: "failed", reason });
  });

  it("409 with a text/x.tlog.size body is the witness's size; anything else under 409 is refused", async () => {
    expect(await exchange(answer(409, "17\n", { "content-type": "text/x.tlog.size" }))).toEqual({ kind: "conflict", size: 17 });
    expect(await exchange(answer(409, "17\n"))).toMatchObject({ kind: "failed", reason: "bad_response" });
    expect(await exchange(answer(409, "017\n", { "content-type": "text/x.tlog.size" }))).toMatchObject({ kind: "failed", reason: "bad_response" });
    expect(await exchange(answer(409, "99999999999999999999\n", { "content-type": "text/x.tlog.size" }))).toMatchObject({ kind: "failed", reason: "bad_response" });
  });

  it.each([
    [400, "malformed_request"],
    [403, "bad_log_signature"],
    [404, "unknown_log"],
    [422, "inconsistent"],
    [500, "server_error"],
    [503, "server_error"],
    [418, "unexpected_status"],
  ])("%i is the failure %s", async (status, reason) => {
    expect(await exchange(answer(status, "no\n"))).toMatchObject({ kind: "failed", reason });
  });

  it("a redirect is not followed", async () => {
    let hits = 0;
    const result = await exchange((req, res) => {
      hits++;
      answer(307, "", { location: "/elsewhere" })(req, res);
    });
    expect(result).toMatchObject({ kind: "failed", reason: "unexpected_status" });
    expect(hits).toBe(1);
  });

  it("a body over the limit is refused, declared or streamed without a length", async () => {
    const big = "x".repeat(MAX_ANSWER_BYTES + 1);
    expect(await exchange(answer(200, big))).toMatchObject({ kind: "failed", reason: "bad_response" });
    const endless: Reply = (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      const chunk = "y".repeat(4096);
      const timer = setInterval(() => res.write(chunk), 1);
      res.on("close", () => clearInterval(timer));
    };
    expect(await exchange(endless)).toMatchObject({ kind: "failed", reason: "bad_response" });
  });

  it("silence ends at the timeout (or when the server stops); a closed port is unreachable", async () => {
    expect(await exchange(() => {}, 300)).toMatchObject({ kind: "failed", reason: "timeout", detail: "no answer within 300 ms" });
    const trickle: Reply = (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("—");
    };
    expect(await exchange(trickle, 300)).toMatchObject({ kind: "failed", reason: "timeout" });
    // Shutdown does not wait for a silent witness: the exchange ends when the server stops.
    reply = () => {};
    const stopping = new AbortController();
    setTimeout(() => stopping.abort(), 100);
    expect(await addCheckpoint(witness, { oldSize: 0, proof: [], note }, 60_000, stopping.signal))
      .toMatchObject({ kind: "failed", reason: "timeout", detail: "cancelled: the server is stopping" });
    const closed = parseWitnesses(`http://127.0.0.1:${await freePort()} ${witnessKey.vkey}`, undefined).witnesses[0]!;
    expect(await addCheckpoint(closed, { oldSize: 0, proof: [], note }, 2000)).toMatchObject({ kind: "failed", reason: "unreachable" });
  });
});
