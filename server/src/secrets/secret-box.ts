// Sealing of stored secrets: AES-256-GCM from node:crypto under the master key, each value on its
// own, with a random 96-bit nonce and the value's place — table, column and row — as additional
// authenticated data, so that a sealed value copied into another row or column no longer opens.
//
// Why direct encryption rather than a data key per row wrapped by the master key: the values are
// a few dozen bytes and the key is local, so a data key would cost as much as the value it
// protects; and `kapsel keys rotate-master` re-encrypts each value under the new key, so someone
// holding an old database copy and the old key learns nothing about the secrets now in use (with
// wrapped data keys the old key would still open the unchanged data keys). The key id in each
// value tells a wrong or unfinished key apart from a damaged value.
//
// Sealed layout (the 0x00 first byte cannot begin a value that was text, which is how values
// written before sealing existed are recognised; a bare 32-byte seed is too short to match):
//   0x00 | version 0x01 | master key id (8) | nonce (12) | ciphertext | GCM tag (16)
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { MasterKey } from "./master-key.ts";

const VERSION = 0x01;
const ID_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 2 + ID_BYTES + NONCE_BYTES;

/** Where a secret lives; bound into its ciphertext. */
export interface SecretSlot {
  table: string;
  column: string;
  /** The row's key: a UUID, or hex for a bytea key. */
  rowId: string;
}

/** A stored secret that cannot be opened: sealed under another master key, moved from another row
 * or column, damaged, or never sealed. Never carries the value. */
export class SecretUnreadable extends Error {
  constructor(slot: SecretSlot, why: string) {
    super(`secret ${slot.table}.${slot.column} of ${slot.rowId} cannot be read: ${why}`);
    this.name = "SecretUnreadable";
  }
}

/** Whether stored bytes are a sealed value (rather than a value written before sealing). */
export function isSealed(stored: Buffer): boolean {
  return stored.length >= HEADER_BYTES + TAG_BYTES && stored[0] === 0x00 && stored[1] === VERSION;
}

/** The id (hex) of the master key a sealed value was sealed with. Requires isSealed. */
export function sealedKeyId(sealed: Buffer): string {
  return sealed.subarray(2, 2 + ID_BYTES).toString("hex");
}

function aad(slot: SecretSlot): Buffer {
  return Buffer.from(`kapsel-secret/v1\n${slot.table}\n${slot.column}\n${slot.rowId}`);
}

export class SecretBox {
  readonly #key: MasterKey;
  /** The key imported once: a raw key given to each cipher costs about three times as much. */
  readonly #keyObject: KeyObject;
  /** Opened values by slot, each with the exact bytes it was opened from: the claim path opens
   * the same few endpoints' secrets over and over. A hit needs both the slot and the bytes to
   * match, so a value moved in from another row is opened (and refused) afresh. */
  readonly #opened = new LRUCache<string, { sealed: Buffer; plain: Buffer }>({ max: 10_000 });

  constructor(key: MasterKey) {
    this.#key = key;
    this.#keyObject = createSecretKey(key.key);
  }

  /** The id (hex) of the key this box seals with. */
  get keyId(): string {
    return this.#key.id.toString("hex");
  }

  seal(plain: Buffer | string, slot: SecretSlot): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#keyObject, nonce);
    cipher.setAAD(aad(slot));
    const body = Buffer.concat([cipher.update(typeof plain === "string" ? Buffer.from(plain, "utf8") : plain), cipher.final()]);
    return Buffer.concat([Buffer.from([0x00, VERSION]), this.#key.id, nonce, body, cipher.getAuthTag()]);
  }

  /** The value sealed in `sealed` for `slot`; throws SecretUnreadable. */
  open(sealed: Buffer, slot: SecretSlot): Buffer {
    const cacheKey = `${slot.table}\n${slot.column}\n${slot.rowId}`;
    const hit = this.#opened.get(cacheKey);
    if (hit?.sealed.equals(sealed)) return hit.plain;
    if (!isSealed(sealed)) throw new SecretUnreadable(slot, "it is not sealed (written before sealing and not sealed since start-up)");
    const id = sealed.subarray(2, 2 + ID_BYTES);
    if (!id.equals(this.#key.id)) throw new SecretUnreadable(slot, `it is sealed with master key ${id.toString("hex")}, not with ${this.keyId}`);
    const nonce = sealed.subarray(2 + ID_BYTES, HEADER_BYTES);
    const decipher = createDecipheriv("aes-256-gcm", this.#keyObject, nonce);
    decipher.setAAD(aad(slot));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new SecretUnreadable(slot, "it does not authenticate (moved from another row or column, or damaged)");
    }
    this.#opened.set(cacheKey, { sealed: Buffer.from(sealed), plain });
    return plain;
  }

  openText(sealed: Buffer, slot: SecretSlot): string {
    return this.open(sealed, slot).toString("utf8");
  }

  /** openText, or undefined for a value that cannot be opened (SecretUnreadable): for readers
   * that go on without it — a check that needs it fails closed, the caller is told to set one. */
  openTextOrNone(sealed: Buffer, slot: SecretSlot): string | undefined {
    try {
      return this.openText(sealed, slot);
    } catch (err) {
      if (err instanceof SecretUnreadable) return undefined;
      throw err;
    }
  }
}

/** A value moved to another slot (a rotation's current secret becoming the previous one): opened
 * from `from` and sealed for `to`; undefined when it cannot be opened. */
export function reseal(box: SecretBox, sealed: Buffer, from: SecretSlot, to: SecretSlot): Buffer | undefined {
  try {
    return box.seal(box.open(sealed, from), to);
  } catch (err) {
    if (err instanceof SecretUnreadable) return undefined;
    throw err;
  }
}
