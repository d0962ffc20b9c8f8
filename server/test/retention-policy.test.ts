// The retention rules on their own: a tenant's choices over the operator's defaults, the bounds a
// tenant key and the admin token each get, and windows that must hold together.
import { describe, expect, it } from "vitest";
import { MAX_RETENTION_SECONDS } from "../src/config.ts";
import { KapselError } from "../src/errors.ts";
import { applyChange, effectiveWindows, NO_CHOICES } from "../src/retention/retention-policy.ts";

const DAY = 86_400;
const defaults = { payloadSeconds: 30 * DAY, responseSeconds: 30 * DAY, eventSeconds: 90 * DAY };
const limits = { defaults, maxSeconds: 365 * DAY };

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(KapselError);
    expect((err as KapselError).code).toBe("E1006");
    return (err as KapselError).message;
  }
  throw new Error("expected E1006");
}

describe("retention windows", () => {
  it("follow the defaults where the tenant chose nothing", () => {
    expect(effectiveWindows(defaults, NO_CHOICES)).toEqual(defaults);
    expect(effectiveWindows(defaults, { ...NO_CHOICES, payloadSeconds: DAY })).toEqual({ ...defaults, payloadSeconds: DAY });
  });

  it("a tenant may shorten any window, down to one second", () => {
    const next = applyChange(NO_CHOICES, { payloadSeconds: 1, responseSeconds: 60, eventSeconds: 3600, reset: false }, "tenant", limits);
    expect(next).toEqual({ payloadSeconds: 1, responseSeconds: 60, eventSeconds: 3600 });
  });

  it("a tenant may lengthen up to the operator's maximum, not beyond, and may not keep until erased", () => {
    expect(applyChange(NO_CHOICES, { eventSeconds: 365 * DAY, reset: false }, "tenant", limits).eventSeconds).toBe(365 * DAY);
    expect(refusal(() => applyChange(NO_CHOICES, { eventSeconds: 365 * DAY + 1, reset: false }, "tenant", limits))).toMatch(/event_retention_seconds must be from 1 to 31536000/);
    expect(refusal(() => applyChange(NO_CHOICES, { payloadSeconds: 0, reset: false }, "tenant", limits))).toMatch(/admin token/);
  });

  it("with no operator maximum a tenant is bounded only by the contract's range", () => {
    const next = applyChange(NO_CHOICES, { payloadSeconds: 10 * 365 * DAY, responseSeconds: DAY, eventSeconds: 20 * 365 * DAY, reset: false }, "tenant", { defaults, maxSeconds: 0 });
    expect(next.eventSeconds).toBe(20 * 365 * DAY);
  });

  it("the admin may exceed the maximum and keep data until erased", () => {
    const next = applyChange(NO_CHOICES, { payloadSeconds: 0, responseSeconds: 0, eventSeconds: 0, reset: false }, "admin", limits);
    expect(effectiveWindows(defaults, next)).toEqual({ payloadSeconds: 0, responseSeconds: 0, eventSeconds: 0 });
    expect(applyChange(NO_CHOICES, { eventSeconds: MAX_RETENTION_SECONDS, reset: false }, "admin", limits).eventSeconds).toBe(MAX_RETENTION_SECONDS);
    expect(refusal(() => applyChange(NO_CHOICES, { eventSeconds: MAX_RETENTION_SECONDS + 1, reset: false }, "admin", limits))).toMatch(/from 0 to/);
  });

  it("payloads and excerpts may not outlast the events that hold them", () => {
    expect(refusal(() => applyChange(NO_CHOICES, { eventSeconds: DAY, reset: false }, "tenant", limits)))
      .toBe("payload_retention_seconds (2592000) must not outlast event_retention_seconds (86400)");
    expect(refusal(() => applyChange(NO_CHOICES, { payloadSeconds: 0, reset: false }, "admin", limits))).toMatch(/payload_retention_seconds \(until erased\)/);
  });

  it("reset forgets earlier choices before applying the new ones", () => {
    const chosen = { payloadSeconds: DAY, responseSeconds: DAY, eventSeconds: 2 * DAY };
    expect(applyChange(chosen, { reset: true }, "tenant", limits)).toEqual(NO_CHOICES);
    expect(applyChange(chosen, { responseSeconds: 3600, reset: true }, "tenant", limits)).toEqual({ ...NO_CHOICES, responseSeconds: 3600 });
    expect(applyChange(chosen, { responseSeconds: 3600, reset: false }, "tenant", limits)).toEqual({ ...chosen, responseSeconds: 3600 });
  });
});
