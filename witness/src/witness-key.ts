// The witness's own Ed25519 key. It lives in a file in the format of Go's signed-note signer keys
// (`PRIVATE+KEY+<name>+<hex 0x01 key ID>+<base64(0x01 || 32-byte seed)>`), which the Go witness
// tools read too; the witness cosigns with it under C2SP tlog-cosignature type 0x04, and publishes
// it as a vkey of that type: `<name>+<hex 0x04 key ID>+<base64(0x04 || public key)>`.
import { createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { constants, type FileHandle, mkdir, open, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import {
  SIGNATURE_TYPE_COSIGNATURE,
  SIGNATURE_TYPE_ED25519,
  computeKeyId,
  cosignatureMessage,
  decodeBase64,
  encodeBase64,
  keyIdHex,
} from "@kapsel/verify";
import { syncDirectory } from "./durable-file.ts";

const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SIGNER_KEY = /^PRIVATE\+KEY\+([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/;
// The signed-note rules for key names: no spaces, no "+", not empty.
const KEY_NAME = /^[^\s+]+$/u;

/** Default key name when `--name` is not given at creation. */
export const DEFAULT_WITNESS_NAME = "witness.localhost";

/** Why the key file cannot be used (the CLI exits 2 with this message). */
export class KeyFileError extends Error {}

/** A loaded witness key: signs cosignatures, describes itself as a vkey. */
export class WitnessKey {
  readonly name: string;
  readonly publicKey: Buffer;
  /** Key ID of the 0x04 cosignature lines. */
  readonly keyId: number;
  readonly #privateKey: KeyObject;

  constructor(name: string, seed: Uint8Array) {
    this.name = name;
    this.#privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
    const spki = createPublicKey(this.#privateKey).export({ format: "der", type: "spki" });
    this.publicKey = spki.subarray(spki.length - 32);
    this.keyId = computeKeyId(name, SIGNATURE_TYPE_COSIGNATURE, this.publicKey);
  }

  /** The witness vkey (type 0x04) operators and verifiers configure. */
  get vkey(): string {
    return `${this.name}+${keyIdHex(this.keyId)}+${encodeBase64(Buffer.concat([Buffer.of(SIGNATURE_TYPE_COSIGNATURE), this.publicKey]))}`;
  }

  /**
   * The cosignature line (with its final newline) for a checkpoint's note text at `seconds`:
   * `— <name> base64(key ID || u64 seconds || Ed25519 over "cosignature/v1\ntime <seconds>\n" || text)`.
   */
  cosign(text: Uint8Array, seconds: bigint): string {
    const signature = sign(null, cosignatureMessage(seconds, text), this.#privateKey);
    const payload = Buffer.alloc(4 + 8 + 64);
    payload.writeUInt32BE(this.keyId, 0);
    payload.writeBigUInt64BE(seconds, 4);
    signature.copy(payload, 12);
    return `\u2014 ${this.name} ${encodeBase64(payload)}\n`;
  }
}

/**
 * Loads the key in `path`, or creates it (mode 0600, never overwriting) when the file does not
 * exist and `create` is set. `name` names a new key; for an existing key it must match. Throws
 * KeyFileError for a malformed file, a name mismatch, or a missing file without `create`.
 */
export async function loadWitnessKey(path: string, options: { name?: string | undefined; create: boolean }): Promise<{ key: WitnessKey; created: boolean; warning?: string }> {
  if (options.name !== undefined && !KEY_NAME.test(options.name)) {
    throw new KeyFileError(`--name "${options.name}" is not a valid key name (no spaces, no "+")`);
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw new KeyFileError(`cannot read key file ${path}: ${(error as Error).message}`);
    if (!options.create) throw new KeyFileError(`key file ${path} does not exist (kapsel-witness serve creates it)`);
    return { key: await createKeyFile(path, options.name ?? DEFAULT_WITNESS_NAME), created: true };
  }
  const key = parseKeyFile(text.trim(), path);
  if (options.name !== undefined && options.name !== key.name) {
    throw new KeyFileError(`key file ${path} holds the key of "${key.name}", not "${options.name}" (--name only names a new key)`);
  }
  const mode = (await stat(path)).mode & 0o777;
  const warning = (mode & 0o077) === 0 ? undefined : `key file ${path} is readable by others (mode ${mode.toString(8)}); chmod 600 it`;
  return { key, created: false, ...(warning === undefined ? {} : { warning }) };
}

function parseKeyFile(text: string, path: string): WitnessKey {
  const match = SIGNER_KEY.exec(text);
  const material = match === null ? undefined : decodeBase64(match[3]!);
  if (match === null || material === undefined || material.length !== 33 || material[0] !== SIGNATURE_TYPE_ED25519) {
    throw new KeyFileError(`key file ${path} is not a PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)> Ed25519 signer key`);
  }
  const key = new WitnessKey(match[1]!, material.subarray(1));
  if (keyIdHex(computeKeyId(key.name, SIGNATURE_TYPE_ED25519, key.publicKey)) !== match[2]) {
    throw new KeyFileError(`key file ${path}: its key ID does not match its key`);
  }
  return key;
}

async function createKeyFile(path: string, name: string): Promise<WitnessKey> {
  const seed = randomBytes(32);
  const key = new WitnessKey(name, seed);
  const id = keyIdHex(computeKeyId(name, SIGNATURE_TYPE_ED25519, key.publicKey));
  const line = `PRIVATE+KEY+${name}+${id}+${encodeBase64(Buffer.concat([Buffer.of(SIGNATURE_TYPE_ED25519), seed]))}\n`;
  let file: FileHandle;
  try {
    // Its folder is made private when Kapsel creates it (an existing one is left as it is).
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    // O_EXCL: two witnesses started at once never both write, and an existing key is never replaced.
    file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    throw new KeyFileError(`cannot create key file ${path}: ${(error as Error).message}`);
  }
  try {
    await file.writeFile(line);
    await file.sync();
  } finally {
    await file.close();
  }
  await syncDirectory(dirname(path));
  return key;
}
