// The ids Kapsel makes: UUIDv7 (RFC 9562), increasing within a process even inside one
// millisecond, so a message's events sort in the order they were made.
import { describe, expect, it } from "vitest";
import { isUuid, uuidv7 } from "../src/uuid.ts";

describe("uuidv7", () => {
  it("is a version 7, variant 10 UUID carrying the time", () => {
    const at = Date.UTC(2026, 11, 1, 12, 0, 0);
    const id = uuidv7(at + 10_000_000);
    expect(isUuid(id)).toBe(true);
    expect(id[14]).toBe("7");
    expect(["8", "9", "a", "b"]).toContain(id[19]);
    expect(Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16)).toBe(at + 10_000_000);
  });

  it("increases strictly, within one millisecond and past the 12-bit counter", () => {
    const now = Date.now() + 20_000_000;
    const ids = Array.from({ length: 10_000 }, () => uuidv7(now));
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    // A clock that steps back does not make ids go back.
    expect(uuidv7(now - 5000) > ids.at(-1)!).toBe(true);
  });
});
