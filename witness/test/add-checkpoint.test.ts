// kapsel-witness answering add-checkpoint exactly as C2SP tlog-witness says, as a real process on
// loopback: it cosigns what extends its history and refuses everything else with the status the
// spec prescribes.
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyCheckpoint } from "@kapsel/verify";
import { ReferenceTree } from "../../verifier/test/support/reference-merkle.ts";
import { TestKey, TestLog, b64, seedOf, signCheckpoint } from "../../verifier/test/support/test-log.ts";
import { checkCosignature } from "./support/cosignature-check.ts";
import { addCheckpoint, addCheckpointBody, buildWitness, startWitness, type WitnessProcess } from "./support/witness-process.ts";

const ORIGIN = "kapsel.test/log";
const log = new TestLog(ORIGIN).append(40);
const other = new TestLog("other.test/log").append(10);

/** The same log key signing a different history: the first `shared` leaves, then others. */
function forkOf(shared: number, size: number, label: string): TestLog {
  const fork = new TestLog(ORIGIN);
  fork.leaves.push(...log.leaves.slice(0, shared));
  for (let i = shared; i < size; i++) fork.leaves.push(Buffer.from(`${label} leaf ${i}`));
  fork.tree = new ReferenceTree(fork.leaves);
  return fork;
}

const proof = (from: number, to: number, source: TestLog = log) => source.tree.consistency(from, to);
const text = (size: number, source: TestLog = log) => source.checkpointText(size);

let dir = "";
let witness: WitnessProcess;
const post = (body: string | Uint8Array<ArrayBuffer>) => addCheckpoint(witness.url, body);

beforeAll(async () => {
  await buildWitness();
  dir = mkdtempSync(join(tmpdir(), "kapsel-witness-"));
  witness = await startWitness({
    keyFile: join(dir, "witness.key"),
    stateDir: join(dir, "state"),
    logs: [log.key.vkey, other.key.vkey],
    name: "witness.test",
  });
});

afterAll(async () => {
  await witness?.stop();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

describe("kapsel-witness add-checkpoint", () => {
  // The tests of this block run in order and share the witness's history of ORIGIN.
  let firstTime = 0n;

  it("cosigns a first checkpoint from old 0, with a cosignature line that checks out independently", async () => {
    const before = BigInt(Math.floor(Date.now() / 1000));
    const answer = await post(addCheckpointBody(0, [], log.checkpoint(5)));
    expect(answer.status).toBe(200);
    expect(answer.body).toMatch(/^— witness\.test [A-Za-z0-9+/]+=*\n$/);
    const checked = checkCosignature(answer.body, witness.vkey, text(5));
    expect(checked.name).toBe("witness.test");
    expect(checked.timestamp).toBeGreaterThanOrEqual(before);
    firstTime = checked.timestamp;
    // …and @kapsel/verify accepts the cosigned checkpoint under a quorum of this witness.
    const cosigned = `${log.checkpoint(5)}${answer.body}`;
    expect(verifyCheckpoint(cosigned, [log.key.vkey], { witnesses: [witness.vkey] })).toMatchObject({ ok: true, treeSize: 5n });
  });

  it("cosigns a checkpoint that extends it, given the consistency proof from the cosigned size", async () => {
    const answer = await post(addCheckpointBody(5, proof(5, 12), log.checkpoint(12)));
    expect(answer.status).toBe(200);
    expect(checkCosignature(answer.body, witness.vkey, text(12)).timestamp).toBeGreaterThanOrEqual(firstTime);
  });

  it("cosigns the same checkpoint again (a fresher cosignature), never a different root at that size", async () => {
    expect((await post(addCheckpointBody(12, [], log.checkpoint(12)))).status).toBe(200);
    const fork = forkOf(8, 12, "same size");
    const answer = await post(addCheckpointBody(12, [], fork.checkpoint(12)));
    expect(answer.status).toBe(422);
    expect(answer.body).toContain(`size 12 was cosigned with root ${b64(log.tree.mth(0, 12))}`);
  });

  it("answers 409 with the cosigned size as text/x.tlog.size when old is not that size", async () => {
    for (const old of [0, 5, 11]) {
      const answer = await post(addCheckpointBody(old, old === 0 ? [] : proof(old, 20), log.checkpoint(20)));
      expect(answer).toEqual({ status: 409, contentType: "text/x.tlog.size", body: "12\n" });
    }
  });

  it("answers 422 to a checkpoint signed with the right key but inconsistent with what it cosigned", async () => {
    const fork = forkOf(10, 20, "inconsistent");
    // The fork's own proof from 12 is valid for the fork's trees, not for the tree the witness cosigned.
    const answer = await post(addCheckpointBody(12, proof(12, 20, fork), fork.checkpoint(20)));
    expect(answer.status).toBe(422);
    expect(answer.body).toContain("no consistency from the cosigned size 12 to 20");
    await witness.printed(`REFUSED ${ORIGIN}: no consistency from the cosigned size 12 to 20`);
  });

  it.each([
    ["a flipped bit in a proof hash", () => proof(12, 20).map((h, i) => (i === 1 ? Buffer.from(h.map((b, j) => (j === 0 ? b ^ 1 : b))) : h))],
    ["a missing proof hash", () => proof(12, 20).slice(1)],
    ["an extra proof hash", () => [...proof(12, 20), log.tree.mth(0, 1)]],
    ["no proof at all", () => []],
  ])("answers 422 to %s", async (_, makeProof) => {
    const answer = await post(addCheckpointBody(12, makeProof(), log.checkpoint(20)));
    expect(answer.status).toBe(422);
  });

  it("still holds the cosigned size 12 after all the refusals, and moves on with a good proof", async () => {
    const answer = await post(addCheckpointBody(12, proof(12, 20), log.checkpoint(20)));
    expect(answer.status).toBe(200);
  });

  it("answers 400 when old is above the checkpoint's size", async () => {
    const answer = await post(addCheckpointBody(25, [], log.checkpoint(20)));
    expect(answer.status).toBe(400);
    expect(answer.body).toBe(`${ORIGIN}: old size 25 is above the checkpoint's size 20\n`);
  });

  it("serves the latest cosigned checkpoint to monitors at /<sha256(origin)>/checkpoint", async () => {
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256").update(ORIGIN).digest("hex");
    const response = await fetch(`${witness.url}/${hash}/checkpoint`);
    expect(response.status).toBe(200);
    const served = await response.text();
    expect(served.startsWith(log.checkpoint(20))).toBe(true);
    checkCosignature(served.slice(log.checkpoint(20).length), witness.vkey, text(20));
    const unknown = await fetch(`${witness.url}/${"0".repeat(64)}/checkpoint`);
    expect(unknown.status).toBe(404);
  });
});

describe("kapsel-witness refusals that need no history", () => {
  it("answers 404 for a log it does not witness", async () => {
    const stranger = new TestLog("stranger.test/log").append(3);
    const answer = await post(addCheckpointBody(0, [], stranger.checkpoint(3)));
    expect(answer.status).toBe(404);
    expect(answer.body).toBe('unknown log origin "stranger.test/log"\n');
  });

  it.each([
    ["signed by another key under the log's name", () => signCheckpoint(new TestKey(ORIGIN, seedOf("impostor")), other.checkpointText(3).replace("other.test/log", ORIGIN), { time: null, extraLines: [] })],
    ["whose log signature does not verify", () => other.checkpoint(3).replace(/(— other\.test\/log \S{10})(\S)/, (_, head: string, c: string) => `${head}${c === "A" ? "B" : "A"}`)],
    ["signed over another text", () => signCheckpoint(other.key, other.checkpointText(3), { time: null, extraLines: [] }).replace(other.checkpointText(3), other.checkpointText(4))],
    ["without signature lines", () => `${other.checkpointText(3)}\n`],
    ["with the log's signature line repeated", () => other.checkpoint(3, { time: null, extraLines: Array.from({ length: 90 }, () => other.key.signatureLine(other.checkpointText(3))) })],
    ["whose signature lines end in CRLF", () => other.checkpoint(3).replace(/\n(— [^\n]*)\n/g, "\n$1\r\n")],
  ])("answers 403 to a checkpoint %s", async (_, make) => {
    expect((await post(addCheckpointBody(0, [], make()))).status).toBe(403);
  });

  it("ignores signatures from unknown keys next to the log's", async () => {
    const stranger = new TestKey("someone.else", seedOf("someone else"));
    const checkpoint = other.checkpoint(3, { extraLines: [stranger.signatureLine(other.checkpointText(3))] });
    expect((await post(addCheckpointBody(0, [], checkpoint))).status).toBe(200);
  });

  it("answers 422 to a size-0 checkpoint whose root is not the empty tree's, and to a proof sent with old 0", async () => {
    const empty = new TestLog("empty.test/log");
    const fresh = await startWitness({ keyFile: join(dir, "fresh.key"), stateDir: join(dir, "fresh-state"), logs: [empty.key.vkey, log.key.vkey] });
    try {
      const bogusRoot = signCheckpoint(empty.key, `empty.test/log\n0\n${b64(log.tree.mth(0, 1))}\n`, { time: null, extraLines: [] });
      expect((await addCheckpoint(fresh.url, addCheckpointBody(0, [], bogusRoot))).status).toBe(422);
      expect((await addCheckpoint(fresh.url, addCheckpointBody(0, proof(1, 5), log.checkpoint(5)))).status).toBe(422);
      expect((await addCheckpoint(fresh.url, addCheckpointBody(0, [], empty.checkpoint(0)))).status).toBe(200);
    } finally {
      await fresh.stop();
    }
  });

  const good = () => other.checkpoint(5);
  it.each([
    ["an old line with a leading zero", () => `old 03\n\n${good()}`],
    ["a negative old size", () => `old -1\n\n${good()}`],
    ["a capitalised old line", () => `Old 3\n\n${good()}`],
    ["an old size above 2^64-1", () => `old 18446744073709551616\n\n${good()}`],
    ["no empty line before the checkpoint", () => `old 3\n${good()}`],
    ["no checkpoint", () => "old 3\n\n"],
    ["an empty body", () => ""],
    ["a proof line that is not base64", () => `old 3\nnot base64!\n\n${good()}`],
    ["a proof line of 31 bytes", () => `old 3\n${b64(Buffer.alloc(31))}\n\n${good()}`],
    ["a proof line with trailing space", () => `old 3\n${b64(Buffer.alloc(32))} \n\n${good()}`],
    ["64 proof lines", () => addCheckpointBody(3, Array.from({ length: 64 }, () => Buffer.alloc(32)), good())],
    ["a checkpoint whose size has a leading zero", () => addCheckpointBody(0, [], signCheckpoint(other.key, `other.test/log\n05\n${b64(other.tree.mth(0, 5))}\n`, { time: null, extraLines: [] }))],
    ["a checkpoint without a root line", () => addCheckpointBody(0, [], signCheckpoint(other.key, "other.test/log\n5\n", { time: null, extraLines: [] }))],
  ])("answers 400 to %s", async (_, make) => {
    expect((await post(make())).status).toBe(400);
  });

  it("takes exactly 63 proof lines (and then judges the proof: 422)", async () => {
    const answer = await post(addCheckpointBody(3, Array.from({ length: 63 }, () => Buffer.alloc(32)), good()));
    expect(answer.status).toBe(422);
  });

  it("answers 400 to a body over 64 KiB, whether announced or streamed", async () => {
    const big = `old 0\n\n${good()}${"x".repeat(70_000)}`;
    expect((await post(big)).status).toBe(400);
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 20; i++) controller.enqueue(new Uint8Array(8 * 1024).fill(0x41));
        controller.close();
      },
    });
    const response = await fetch(`${witness.url}/add-checkpoint`, { method: "POST", body: chunks, duplex: "half" } as RequestInit);
    expect(response.status).toBe(400);
  });

  it("answers 400 at once to a body announced above 1 MiB, without reading it, and closes the connection", async () => {
    const { port, hostname } = new URL(witness.url);
    const socket = connect(Number(port), hostname);
    let answer = "";
    socket.on("data", (d) => (answer += d.toString()));
    socket.write("POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 5000000\r\n\r\nold 0\n");
    await new Promise<void>((resolve) => socket.on("close", () => resolve()));
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toContain("connection: close\r\n");
    expect(answer).toContain("malformed request: the body is larger than 65536 bytes\n");
  });

  it("answers 405 to other methods on /add-checkpoint and 404 elsewhere", async () => {
    const get = await fetch(`${witness.url}/add-checkpoint`);
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect((await fetch(`${witness.url}/`)).status).toBe(404);
    expect((await fetch(`${witness.url}/add-checkpoint/`, { method: "POST", body: "old 0\n\n" })).status).toBe(404);
  });
});
