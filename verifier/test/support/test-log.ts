// A stand-in for Kapsel's log, built only from node:crypto and the reference tree, so that the
// verifier is tested against bytes it had no part in producing. Signs checkpoints the way
// ATTESTATION.md §3 says (0x01 log signature, 0x04 signed time) and writes tlog-proof bundles.
import { createPrivateKey, createPublicKey, sign, type KeyObject } from "node:crypto";
import { ReferenceTree, sha256 } from "./reference-merkle.ts";

const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");

export function keyId(name: string, type: number, publicKey: Uint8Array): Buffer {
  return sha256(Buffer.from(`${name}\n`, "utf8"), Uint8Array.of(type), publicKey).subarray(0, 4);
}

/** An Ed25519 key pair from a 32-byte seed, with the note-format pieces derived from it. */
export class TestKey {
  readonly name: string;
  readonly privateKey: KeyObject;
  readonly publicKey: Buffer;

  constructor(name: string, seed: Uint8Array) {
    this.name = name;
    this.privateKey = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
      format: "der",
      type: "pkcs8",
    });
    const spki = createPublicKey(this.privateKey).export({ format: "der", type: "spki" });
    this.publicKey = spki.subarray(spki.length - 32);
  }

  get vkey(): string {
    return `${this.name}+${keyId(this.name, 0x01, this.publicKey).toString("hex")}+${b64(
      Buffer.concat([Uint8Array.of(0x01), this.publicKey]),
    )}`;
  }

  /** The key as a witness's cosigning vkey: type 0x04 key ID and type byte. */
  get witnessVkey(): string {
    return `${this.name}+${keyId(this.name, 0x04, this.publicKey).toString("hex")}+${b64(
      Buffer.concat([Uint8Array.of(0x04), this.publicKey]),
    )}`;
  }

  sign(message: Uint8Array): Buffer {
    return sign(null, message, this.privateKey);
  }

  /** `— <name> base64(keyID || sig)` for the 0x01 signature over `text`. */
  signatureLine(text: string): string {
    const sig = this.sign(Buffer.from(text, "utf8"));
    return `— ${this.name} ${b64(Buffer.concat([keyId(this.name, 0x01, this.publicKey), sig]))}`;
  }

  /** The 0x04 signed-time line for `text` at `seconds`. */
  timeLine(text: string, seconds: bigint): string {
    const message = Buffer.from(`cosignature/v1\ntime ${seconds}\n${text}`, "utf8");
    const time = Buffer.alloc(8);
    time.writeBigUInt64BE(seconds);
    const payload = Buffer.concat([keyId(this.name, 0x04, this.publicKey), time, this.sign(message)]);
    return `— ${this.name} ${b64(payload)}`;
  }
}

export function seedOf(label: string): Buffer {
  return sha256(Buffer.from(label, "utf8"));
}

/** A deterministic UUID-shaped string for test receipts. */
export function uuid(label: string): string {
  const h = sha256(Buffer.from(label, "utf8")).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** RFC 8785 for the flat receipts used here: members sorted, JSON.stringify for values. */
export function canonical(receipt: Record<string, unknown>): string {
  return JSON.stringify(receipt, Object.keys(receipt).sort());
}

export function receiptFor(i: number, payload: Uint8Array, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1,
    attempt_id: uuid(`attempt ${i}`),
    event_id: uuid(`event ${i >> 1}`),
    tenant_id: uuid("tenant"),
    endpoint_id: uuid("endpoint"),
    url: `https://hooks.example.net/kapsel?n=${i}`,
    attempt: (i % 2) + 1,
    payload_sha256: sha256(payload).toString("hex"),
    started_at: new Date(Date.UTC(2026, 10, 22, 10, 30, 0) + i * 1_234).toISOString(),
    duration_ms: 40 + i,
    outcome: i % 2 === 0 ? "http_error" : "delivered",
    status_code: i % 2 === 0 ? 503 : 200,
    response_sha256: i % 3 === 0 ? null : sha256(Buffer.from(`response ${i}`)).toString("hex"),
    ...overrides,
  };
}

export interface CheckpointOptions {
  /** Signed time in POSIX seconds, or null for no 0x04 line. Default 1_795_000_000 + size. */
  readonly time?: bigint | null;
  /** Extra signature lines appended after the log's. */
  readonly extraLines?: readonly string[];
}

/** A log of receipts with the reference tree over them. */
export class TestLog {
  readonly key: TestKey;
  readonly origin: string;
  readonly payloads: Buffer[] = [];
  readonly leaves: Buffer[] = [];
  tree = new ReferenceTree([]);

  constructor(origin = "kapsel.example.com/log", seed = seedOf(`test log ${origin}`)) {
    this.origin = origin;
    this.key = new TestKey(origin, seed);
  }

  append(count: number): this {
    for (let n = 0; n < count; n++) {
      const i = this.leaves.length;
      const payload = Buffer.from(JSON.stringify({ type: "invoice.paid", data: { id: `inv_${i}`, amount: 100 * i } }));
      this.payloads.push(payload);
      this.leaves.push(Buffer.from(canonical(receiptFor(i, payload)), "utf8"));
    }
    this.tree = new ReferenceTree(this.leaves);
    return this;
  }

  checkpointText(size = this.leaves.length): string {
    return `${this.origin}\n${size}\n${b64(this.tree.mth(0, size))}\n`;
  }

  /** A signed checkpoint of the first `size` leaves. */
  checkpoint(size = this.leaves.length, options: CheckpointOptions = {}): string {
    return signCheckpoint(this.key, this.checkpointText(size), {
      time: options.time === undefined ? 1_795_000_000n + BigInt(size) : options.time,
      extraLines: options.extraLines ?? [],
    });
  }

  /** A tlog-proof@v1 bundle for leaf `index` under the checkpoint of `size`. */
  bundle(index: number, size = this.leaves.length, options: CheckpointOptions = {}): string {
    return bundleText(this.leaves[index]!, index, this.tree.path(index, size), this.checkpoint(size, options));
  }
}

export function signCheckpoint(
  key: TestKey,
  text: string,
  options: { time: bigint | null; extraLines: readonly string[] },
): string {
  const lines = [key.signatureLine(text)];
  if (options.time !== null) lines.push(key.timeLine(text, options.time));
  return `${text}\n${[...lines, ...options.extraLines].join("\n")}\n`;
}

/**
 * Adds `witness`'s cosignature line at `seconds` to a signed note (C2SP tlog-cosignature: the
 * same 0x04 line format as the log's signed time, made with the witness's own key and name).
 */
export function cosign(note: string, witness: TestKey, seconds: bigint): string {
  const text = note.slice(0, note.lastIndexOf("\n\n") + 1);
  return `${note}${witness.timeLine(text, seconds)}\n`;
}

export function bundleText(extra: Uint8Array, index: number | bigint, proof: readonly Uint8Array[], checkpoint: string): string {
  const proofLines = proof.map((hash) => `${b64(hash)}\n`).join("");
  return `c2sp.org/tlog-proof@v1\nextra ${b64(extra)}\nindex ${index}\n${proofLines}\n${checkpoint}`;
}
