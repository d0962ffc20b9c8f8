// An independent reading of C2SP tlog-cosignature (Ed25519, type 0x04), written from the spec with
// node:crypto only, so the witness's cosignatures are checked by code it shares nothing with.
import { createHash, createPublicKey, verify } from "node:crypto";

export interface CheckedCosignature {
  readonly name: string;
  readonly timestamp: bigint;
}

/**
 * Checks one cosignature line (`— <name> base64(key ID || u64 time || signature)\n`) against the
 * witness's vkey and the cosigned checkpoint's note text. Throws saying what is wrong.
 */
export function checkCosignature(line: string, witnessVkey: string, checkpointText: string): CheckedCosignature {
  // vkey: <name>+<hex key ID>+<base64(0x04 || 32-byte Ed25519 public key)>
  const [name, hexId] = witnessVkey.split("+", 2) as [string, string];
  const key = Buffer.from(witnessVkey.slice(name.length + hexId.length + 2), "base64");
  if (key.length !== 33 || key[0] !== 0x04) throw new Error(`vkey ${witnessVkey} is not a 0x04 Ed25519 cosigner key`);
  const publicKey = key.subarray(1);
  const keyId = createHash("sha256").update(name).update(Buffer.of(0x0a, 0x04)).update(publicKey).digest().subarray(0, 4);
  if (keyId.toString("hex") !== hexId) throw new Error(`vkey key ID ${hexId} is not SHA-256(name || \\n || 0x04 || key)[:4] = ${keyId.toString("hex")}`);

  const match = /^\u2014 (\S+) ([A-Za-z0-9+/]+=*)\n$/.exec(line);
  if (match === null) throw new Error(`not a note signature line: ${JSON.stringify(line)}`);
  if (match[1] !== name) throw new Error(`line names ${match[1]}, the witness is ${name}`);
  const payload = Buffer.from(match[2]!, "base64");
  if (payload.toString("base64") !== match[2]) throw new Error("signature is not canonical base64");
  if (payload.length !== 4 + 8 + 64) throw new Error(`payload is ${payload.length} bytes, a timestamped Ed25519 signature is 76`);
  if (!payload.subarray(0, 4).equals(keyId)) throw new Error("the line's key ID is not the witness's 0x04 key ID");
  const timestamp = payload.readBigUInt64BE(4);
  if (timestamp === 0n || timestamp > (1n << 63n) - 1n) throw new Error(`timestamp ${timestamp} is out of range`);
  const message = Buffer.concat([Buffer.from(`cosignature/v1\ntime ${timestamp}\n`), Buffer.from(checkpointText)]);
  const jwk = { kty: "OKP", crv: "Ed25519", x: publicKey.toString("base64url") };
  if (!verify(null, message, createPublicKey({ key: jwk, format: "jwk" }), payload.subarray(12))) {
    throw new Error("the Ed25519 signature does not verify over cosignature/v1, the time and the checkpoint text");
  }
  return { name, timestamp };
}
