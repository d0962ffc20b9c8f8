// The circuit breaker's transitions with time passed in: Closed → Open → Half-Open → Closed/Open.
import { describe, expect, it } from "vitest";
import { afterOutcome, CLOSED, mayProbe, probeClaimed, probeReleased, type BreakerConfig, type BreakerState, type WindowStats } from "../src/delivery/circuit-breaker.ts";

const CONFIG: BreakerConfig = { consecutiveFailures: 5, failureRate: 0.5, minAttempts: 10, windowMs: 60_000, openMs: 30_000, maxProbes: 2 };
const T0 = 1_700_000_000_000;
const QUIET: WindowStats = { attempts: 1, failures: 0 };

/** Applies outcomes in order (true = success), one second apart, with the given window figures. */
function run(start: BreakerState, outcomes: boolean[], window: WindowStats = QUIET, t = T0): BreakerState {
  let s = start;
  outcomes.forEach((ok, i) => (s = afterOutcome(s, ok, false, window, t + i * 1000, CONFIG)));
  return s;
}

function openAt(t: number): BreakerState {
  return afterOutcome({ ...CLOSED, consecutiveFailures: 4 }, false, false, QUIET, t, CONFIG);
}

describe("closed", () => {
  it("opens on the 5th consecutive failure, not before", () => {
    const four = run(CLOSED, [false, false, false, false]);
    expect(four).toEqual({ ...CLOSED, consecutiveFailures: 4 });
    const five = afterOutcome(four, false, false, QUIET, T0 + 10_000, CONFIG);
    expect(five).toEqual({ state: "open", consecutiveFailures: 5, openedAtMs: T0 + 10_000, retryAtMs: T0 + 40_000, probes: 0 });
  });

  it("a success resets the consecutive count", () => {
    const s = run(CLOSED, [false, false, false, false, true, false, false, false, false]);
    expect(s).toEqual({ ...CLOSED, consecutiveFailures: 4 });
  });

  it("opens when at least half of at least 10 attempts in the window failed, without 5 in a row", () => {
    const s = afterOutcome({ ...CLOSED, consecutiveFailures: 1 }, false, false, { attempts: 10, failures: 5 }, T0, CONFIG);
    expect(s.state).toBe("open");
    expect(s.consecutiveFailures).toBe(2);
    expect(s.retryAtMs).toBe(T0 + 30_000);
  });

  it("stays closed below the rate or below the minimum attempts", () => {
    expect(afterOutcome(CLOSED, false, false, { attempts: 10, failures: 4 }, T0, CONFIG).state).toBe("closed");
    expect(afterOutcome(CLOSED, false, false, { attempts: 9, failures: 9 }, T0, CONFIG).state).toBe("closed");
  });

  it("a success never opens it, whatever the window says", () => {
    expect(afterOutcome({ ...CLOSED, consecutiveFailures: 3 }, true, false, { attempts: 100, failures: 99 }, T0, CONFIG)).toEqual(CLOSED);
  });

  it("allows no probes", () => {
    expect(mayProbe(CLOSED, T0, CONFIG)).toBe(false);
  });
});

describe("open", () => {
  it("lets no probe through before the open timeout, and one at and after it", () => {
    const s = openAt(T0);
    expect(mayProbe(s, T0, CONFIG)).toBe(false);
    expect(mayProbe(s, T0 + 29_999, CONFIG)).toBe(false);
    expect(mayProbe(s, T0 + 30_000, CONFIG)).toBe(true);
    expect(mayProbe(s, T0 + 90_000, CONFIG)).toBe(true);
  });

  it("an attempt that was in flight when it opened changes nothing but the failure count", () => {
    const s = openAt(T0);
    expect(afterOutcome(s, false, false, QUIET, T0 + 1_000, CONFIG)).toEqual({ ...s, consecutiveFailures: 6 });
    expect(afterOutcome(s, true, false, QUIET, T0 + 1_000, CONFIG)).toEqual({ ...s, consecutiveFailures: 0 });
  });
});

describe("half-open", () => {
  it("claiming a probe half-opens it; at most 2 probes are out at once", () => {
    const one = probeClaimed(openAt(T0));
    expect(one).toMatchObject({ state: "half_open", probes: 1 });
    expect(mayProbe(one, T0 + 30_000, CONFIG)).toBe(true);
    const two = probeClaimed(one);
    expect(two).toMatchObject({ state: "half_open", probes: 2 });
    expect(mayProbe(two, T0 + 30_000, CONFIG)).toBe(false);
    expect(mayProbe(probeReleased(two), T0 + 30_000, CONFIG)).toBe(true);
  });

  it("a successful probe closes it", () => {
    const s = probeClaimed(probeClaimed(openAt(T0)));
    expect(afterOutcome(s, true, true, QUIET, T0 + 31_000, CONFIG)).toEqual(CLOSED);
  });

  it("a failed probe opens it again for another open timeout from now", () => {
    const s = probeClaimed(openAt(T0));
    const again = afterOutcome(s, false, true, QUIET, T0 + 31_000, CONFIG);
    expect(again).toEqual({ state: "open", consecutiveFailures: 6, openedAtMs: T0 + 31_000, retryAtMs: T0 + 61_000, probes: 0 });
    expect(mayProbe(again, T0 + 60_999, CONFIG)).toBe(false);
    expect(mayProbe(again, T0 + 61_000, CONFIG)).toBe(true);
  });

  it("outcomes of attempts that were not probes decide nothing", () => {
    const s = probeClaimed(openAt(T0));
    expect(afterOutcome(s, true, false, QUIET, T0 + 31_000, CONFIG)).toEqual({ ...s, consecutiveFailures: 0 });
    expect(afterOutcome(s, false, false, QUIET, T0 + 31_000, CONFIG)).toMatchObject({ state: "half_open", probes: 1 });
  });

  it("the full cycle: closed → open → half-open → open → half-open → closed", () => {
    let s = run(CLOSED, [false, false, false, false, false]);
    expect(s.state).toBe("open");
    const opened = s.openedAtMs!;
    s = probeClaimed(s);
    s = afterOutcome(s, false, true, QUIET, opened + 30_000, CONFIG);
    expect(s.state).toBe("open");
    expect(mayProbe(s, opened + 59_999, CONFIG)).toBe(false);
    s = probeClaimed(s);
    s = afterOutcome(s, true, true, QUIET, opened + 61_000, CONFIG);
    expect(s).toEqual(CLOSED);
  });
});
