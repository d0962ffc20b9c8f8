// What an operator of kapsel-witness relies on beyond single answers: the key file, restarts
// from the state directory (even after kill -9), concurrent requests, one process per state
// directory, and usage errors.
import { connect } from "node:net";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReferenceTree } from "../../verifier/test/support/reference-merkle.ts";
import { TestLog } from "../../verifier/test/support/test-log.ts";
import { checkCosignature } from "./support/cosignature-check.ts";
import { NODE_20, addCheckpoint, addCheckpointBody, buildWitness, runWitness, startWitness } from "./support/witness-process.ts";

const ORIGIN = "lifecycle.test/log";
const log = new TestLog(ORIGIN).append(64);
const second = new TestLog("second.test/log").append(64);

function forkOf(shared: number, size: number, label: string): TestLog {
  const fork = new TestLog(ORIGIN);
  fork.leaves.push(...log.leaves.slice(0, shared));
  for (let i = shared; i < size; i++) fork.leaves.push(Buffer.from(`${label} leaf ${i}`));
  fork.tree = new ReferenceTree(fork.leaves);
  return fork;
}

let dir = "";
const path = (name: string) => join(dir, name);

beforeAll(async () => {
  await buildWitness();
  dir = mkdtempSync(join(tmpdir(), "kapsel-witness-life-"));
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

describe("the witness key file", () => {
  it("is created with mode 0600 under the --name given, and `vkey` prints what serve announced", async () => {
    const witness = await startWitness({ keyFile: path("named.key"), stateDir: path("named-state"), logs: [log.key.vkey], name: "witness.example.org/w1" });
    await witness.stop();
    expect(statSync(path("named.key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(path("named.key"), "utf8")).toMatch(/^PRIVATE\+KEY\+witness\.example\.org\/w1\+[0-9a-f]{8}\+A[Q-Za-f][A-Za-z0-9+/]{42}\n$/);
    const vkey = runWitness(["vkey", "--key-file", path("named.key")]);
    expect(vkey).toEqual({ status: 0, stdout: `${witness.vkey}\n`, stderr: "" });
    // base64(0x04 || key): the type byte 0x04 makes it start with "B".
    expect(witness.vkey).toMatch(/^witness\.example\.org\/w1\+[0-9a-f]{8}\+B[A-P][A-Za-z0-9+/]{42}$/);
  });

  it("is created with its folder (mode 0700) when the folder does not exist yet", async () => {
    const witness = await startWitness({ keyFile: path("new-folder/nested/w.key"), stateDir: path("new-folder/state"), logs: [log.key.vkey] });
    await witness.stop();
    expect(statSync(path("new-folder/nested")).mode & 0o777).toBe(0o700);
    expect(statSync(path("new-folder/nested/w.key")).mode & 0o777).toBe(0o600);
  });

  it("is named witness.localhost by default, and kept (not replaced) on the next start", async () => {
    const first = await startWitness({ keyFile: path("default.key"), stateDir: path("default-state"), logs: [log.key.vkey] });
    await first.stop();
    const again = await startWitness({ keyFile: path("default.key"), stateDir: path("default-state"), logs: [log.key.vkey] });
    await again.stop();
    expect(first.vkey).toMatch(/^witness\.localhost\+/);
    expect(again.vkey).toBe(first.vkey);
    expect(first.output()).toContain(`created key file ${path("default.key")}`);
    expect(again.output()).not.toContain("created key file");
  });

  it("refuses --name for an existing key of another name, a missing key for `vkey`, and a damaged key file", () => {
    const renamed = runWitness(["serve", "--listen", "127.0.0.1:0", "--key-file", path("default.key"), "--state-dir", path("x"), "--log", log.key.vkey, "--name", "other.name"]);
    expect(renamed.status).toBe(2);
    expect(renamed.stderr).toContain(`holds the key of "witness.localhost", not "other.name"`);
    const missing = runWitness(["vkey", "--key-file", path("nope.key")]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("does not exist");
    writeFileSync(path("damaged.key"), readFileSync(path("default.key"), "utf8").replace(/\+[0-9a-f]{8}\+/, "+00000000+"));
    const damaged = runWitness(["vkey", "--key-file", path("damaged.key")]);
    expect(damaged.status).toBe(2);
    expect(damaged.stderr).toContain("its key ID does not match its key");
  });

  it("warns when the key file is readable by others", async () => {
    chmodSync(path("default.key"), 0o644);
    const witness = await startWitness({ keyFile: path("default.key"), stateDir: path("default-state"), logs: [log.key.vkey] });
    await witness.stop();
    chmodSync(path("default.key"), 0o600);
    expect(witness.output()).toContain("is readable by others (mode 644); chmod 600 it");
  });
});

describe("restarts", () => {
  it("keep refusing an inconsistent checkpoint after kill -9 and a restart from the state directory", async () => {
    const options = { keyFile: path("restart.key"), stateDir: path("restart-state"), logs: [log.key.vkey] };
    const before = await startWitness(options);
    expect((await addCheckpoint(before.url, addCheckpointBody(0, [], log.checkpoint(10)))).status).toBe(200);
    const cosigned = await addCheckpoint(before.url, addCheckpointBody(10, log.tree.consistency(10, 30), log.checkpoint(30)));
    expect(cosigned.status).toBe(200);
    const firstTime = checkCosignature(cosigned.body, before.vkey, log.checkpointText(30)).timestamp;
    expect(await before.stop("SIGKILL")).toBe("SIGKILL");

    const after = await startWitness(options);
    try {
      const fork = forkOf(20, 40, "after restart");
      expect((await addCheckpoint(after.url, addCheckpointBody(30, [], forkOf(20, 30, "same size").checkpoint(30)))).status).toBe(422);
      expect((await addCheckpoint(after.url, addCheckpointBody(30, fork.tree.consistency(30, 40), fork.checkpoint(40)))).status).toBe(422);
      expect(await addCheckpoint(after.url, addCheckpointBody(0, [], fork.checkpoint(40)))).toEqual({ status: 409, contentType: "text/x.tlog.size", body: "30\n" });
      const next = await addCheckpoint(after.url, addCheckpointBody(30, log.tree.consistency(30, 40), log.checkpoint(40)));
      expect(next.status).toBe(200);
      expect(checkCosignature(next.body, after.vkey, log.checkpointText(40)).timestamp).toBeGreaterThanOrEqual(firstTime);
    } finally {
      await after.stop();
    }
  });

  it("refuses to start on a corrupt state file instead of forgetting what it cosigned", async () => {
    const options = { keyFile: path("corrupt.key"), stateDir: path("corrupt-state"), logs: [log.key.vkey] };
    const witness = await startWitness(options);
    expect((await addCheckpoint(witness.url, addCheckpointBody(0, [], log.checkpoint(8)))).status).toBe(200);
    await witness.stop();
    const { createHash } = await import("node:crypto");
    const file = join(path("corrupt-state"), "logs", `${createHash("sha256").update(ORIGIN).digest("hex")}.json`);
    writeFileSync(file, readFileSync(file, "utf8").replace('"size": "8"', '"size": "7"'));
    const run = runWitness(["serve", "--listen", "127.0.0.1:0", "--key-file", options.keyFile, "--state-dir", options.stateDir, "--log", log.key.vkey]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("is corrupt (the checkpoint does not match the size and root); refusing to guess what was cosigned");
  });

  it("allows one witness process per state directory", async () => {
    const options = { keyFile: path("lock.key"), stateDir: path("lock-state"), logs: [log.key.vkey] };
    const witness = await startWitness(options);
    try {
      const second = runWitness(["serve", "--listen", "127.0.0.1:0", "--key-file", options.keyFile, "--state-dir", options.stateDir, "--log", log.key.vkey]);
      expect(second.status).toBe(1);
      expect(second.stderr).toContain(`the state directory is in use by process ${witness.child.pid}`);
    } finally {
      await witness.stop();
    }
  });
});

describe("concurrent requests", () => {
  it("cosign exactly one of many different histories offered at once from the same size", async () => {
    const witness = await startWitness({ keyFile: path("race.key"), stateDir: path("race-state"), logs: [log.key.vkey, second.key.vkey] });
    try {
      expect((await addCheckpoint(witness.url, addCheckpointBody(0, [], log.checkpoint(16)))).status).toBe(200);
      const forks = Array.from({ length: 12 }, (_, i) => forkOf(16, 20 + (i % 3), `race ${i}`));
      const answers = await Promise.all([
        ...forks.map((fork) => addCheckpoint(witness.url, addCheckpointBody(16, fork.tree.consistency(16, fork.leaves.length), fork.checkpoint()))),
        // Another log, meanwhile, is not held up by this one.
        addCheckpoint(witness.url, addCheckpointBody(0, [], second.checkpoint(9))),
      ]);
      expect(answers.at(-1)!.status).toBe(200);
      const winners = forks.filter((_, i) => answers[i]!.status === 200);
      expect(winners).toHaveLength(1);
      const winner = winners[0]!;
      for (const [i, answer] of answers.slice(0, -1).entries()) {
        if (forks[i] !== winner) expect(answer).toEqual({ status: 409, contentType: "text/x.tlog.size", body: `${winner.leaves.length}\n` });
      }
      // The history it now holds is the winner's, and only the winner's continues it.
      const { createHash } = await import("node:crypto");
      const served = await (await fetch(`${witness.url}/${createHash("sha256").update(ORIGIN).digest("hex")}/checkpoint`)).text();
      expect(served.startsWith(winner.checkpoint())).toBe(true);
    } finally {
      await witness.stop();
    }
  });
});

describe("bounds and usage", () => {
  it("closes a connection whose request never finishes arriving", async () => {
    const witness = await startWitness({ keyFile: path("slow.key"), stateDir: path("slow-state"), logs: [log.key.vkey] });
    try {
      const { port, hostname } = new URL(witness.url);
      const socket = connect(Number(port), hostname);
      let answer = "";
      socket.on("data", (d) => (answer += d.toString()));
      socket.write("POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 100\r\n\r\nold 0\n");
      await new Promise<void>((resolve) => socket.on("close", () => resolve()));
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      await witness.stop();
    }
  });

  it.each([
    ["no --log", ["serve", "--listen", "127.0.0.1:0", "--key-file", "k", "--state-dir", "s"], "at least one --log"],
    ["a witness vkey as --log", ["serve", "--listen", "127.0.0.1:0", "--key-file", "k", "--state-dir", "s", "--log", "PLACEHOLDER"], "a witness cosigning key (type 0x04), not a log key"],
    ["a bad --listen", ["serve", "--listen", "localhost", "--key-file", "k", "--state-dir", "s", "--log", log.key.vkey], "--listen localhost: expected HOST:PORT"],
    ["an unknown option", ["serve", "--port", "1"], "Unknown option '--port'"],
    ["an unknown command", ["cosign"], 'unknown command "cosign"'],
    ["a --name with a space", ["serve", "--listen", "127.0.0.1:0", "--key-file", "k2", "--state-dir", "s", "--log", log.key.vkey, "--name", "a b"], 'is not a valid key name'],
  ])("exits 2 for %s", (_, args, message) => {
    const witnessVkey = () => runWitness(["vkey", "--key-file", path("default.key")]).stdout.trim();
    const r = runWitness(args.map((a) => (a === "PLACEHOLDER" ? witnessVkey() : a.length <= 2 ? path(a) : a)));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it("runs under the system's Node 20", async () => {
    const witness = await startWitness({ keyFile: path("node20.key"), stateDir: path("node20-state"), logs: [log.key.vkey], node: NODE_20 });
    try {
      const answer = await addCheckpoint(witness.url, addCheckpointBody(0, [], log.checkpoint(3)));
      expect(answer.status).toBe(200);
      checkCosignature(answer.body, witness.vkey, log.checkpointText(3));
    } finally {
      await witness.stop();
    }
  });
});
