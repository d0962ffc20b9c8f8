// Who receives a fanned-out message: the rule in TypeScript (fan-out) and its SQL twin (listing
// endpoints by type) must agree on every case; names, wildcards and channels as users write them.
import type pg from "pg";
import { createPool, sql, type DatabasePool } from "slonik";
import { createPgDriverFactory } from "@slonik/pg-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkEventType, checkMessageChannels, checkSubscription, normalizeEventType, subscribes, takesType, takesTypeSql } from "../src/ingest/subscriptions.ts";
import { connect, createTestDatabase } from "../../test/support/database.ts";

const CASES: [string[], string, boolean][] = [
  [[], "anything", true],
  [[], "", true],
  [["invoice.paid"], "invoice.paid", true],
  [["invoice.paid"], "invoice.paid.late", false],
  [["invoice.paid"], "", false],
  [["invoice.*"], "invoice.paid", true],
  [["invoice.*"], "invoice.payment.failed", true],
  [["invoice.*"], "invoice", false],
  [["invoice.*"], "invoices.paid", false],
  [["invoice.*"], "", false],
  [["kapsel.*"], "kapsel.endpoint.disabled", true],
  [[], "kapsel.endpoint.disabled", false],
  [["kapsel.event.failed"], "kapsel.event.failed", true],
  [["kapsel.endpoint.*"], "kapsel.event.failed", false],
  [["a_b.*"], "axb.c", false],
  [["order.created", "invoice.*"], "invoice.paid", true],
  [["order.created", "invoice.*"], "order.updated", false],
];

describe("subscriptions", () => {
  it.each(CASES)("%j takes %j: %s", (patterns, type, expected) => {
    expect(takesType(patterns, type)).toBe(expected);
  });

  it("channels narrow an endpoint to messages that carry one of them", () => {
    expect(subscribes({ eventTypes: [], channels: [] }, "x", ["acme"])).toBe(true);
    expect(subscribes({ eventTypes: [], channels: ["acme"] }, "x", ["acme", "beta"])).toBe(true);
    expect(subscribes({ eventTypes: [], channels: ["acme"] }, "x", ["beta"])).toBe(false);
    expect(subscribes({ eventTypes: [], channels: ["acme"] }, "x", [])).toBe(false);
    expect(subscribes({ eventTypes: ["y"], channels: ["acme"] }, "x", ["acme"])).toBe(false);
  });

  it("refuses malformed types, patterns and channels with E1006", () => {
    for (const bad of ["Invoice.Paid", "has space", "a".repeat(129), "", "ümlaut"]) expect(() => checkEventType(bad)).toThrow(/E1006|event_type/);
    for (const bad of ["*", ".*", "invoice.*.paid", "invoice*", "a".repeat(130)]) expect(() => checkSubscription([bad], [])).toThrow();
    expect(() => checkSubscription([], ["has space"])).toThrow();
    expect(() => checkSubscription(Array.from({ length: 101 }, (_, i) => `t${i}`), [])).toThrow();
    expect(() => checkMessageChannels(Array.from({ length: 11 }, (_, i) => `c${i}`))).toThrow();
    expect(checkSubscription(["a.*", "a.*", "b"], ["x", "x"])).toEqual({ eventTypes: ["a.*", "b"], channels: ["x"] });
  });

  it("turns senders' types into ours, or into nothing", () => {
    expect(normalizeEventType("orders/create")).toBe("orders.create");
    expect(normalizeEventType("Pull_Request")).toBe("pull_request");
    expect(normalizeEventType("invoice.paid")).toBe("invoice.paid");
    expect(normalizeEventType("  ")).toBe("");
    expect(normalizeEventType("💥")).toBe("");
    expect(normalizeEventType(undefined)).toBe("");
    expect(normalizeEventType("x".repeat(200))).toBe("");
  });
});

describe("takesTypeSql agrees with takesType", () => {
  let pool: DatabasePool;
  let db: pg.Client;
  beforeAll(async () => {
    const url = await createTestDatabase();
    pool = await createPool(url, { driverFactory: createPgDriverFactory() });
    db = await connect(url);
  });
  afterAll(async () => {
    await db?.end();
    await pool?.end();
  });

  it("on every case", async () => {
    for (const [patterns, type, expected] of CASES) {
      const got = await pool.oneFirst(sql.unsafe`
        SELECT ${takesTypeSql(type)} AS ok FROM (SELECT ${sql.array(patterns, "text")} AS event_types) e`);
      expect([patterns, type, got]).toEqual([patterns, type, expected]);
    }
  });
});
