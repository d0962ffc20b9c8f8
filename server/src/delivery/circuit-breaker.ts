// Per-endpoint circuit breaker, as pure state transitions with the time passed in. The dispatcher
// applies them to the persisted row (circuit_breakers) under a row lock, so every server process
// shares one breaker per endpoint and a restart keeps it.
//
//   Closed ──(N consecutive failures, or failure rate ≥ r over ≥ m attempts in the window)──▶ Open
//   Open ──(open timeout passed; a probe is claimed)──▶ Half-Open (at most P probes in flight)
//   Half-Open ──(probe succeeds)──▶ Closed        Half-Open ──(probe fails)──▶ Open

export type CircuitStateName = "closed" | "open" | "half_open";

export interface BreakerState {
  state: CircuitStateName;
  consecutiveFailures: number;
  openedAtMs: number | undefined;
  /** While open: when probing may begin. */
  retryAtMs: number | undefined;
  /** While half-open: probes claimed and not yet decided. */
  probes: number;
}

export interface BreakerConfig {
  consecutiveFailures: number;
  failureRate: number;
  minAttempts: number;
  windowMs: number;
  openMs: number;
  maxProbes: number;
}

export const CLOSED: BreakerState = { state: "closed", consecutiveFailures: 0, openedAtMs: undefined, retryAtMs: undefined, probes: 0 };

/** Attempts and failures in the sliding window, including the outcome being applied. */
export interface WindowStats {
  attempts: number;
  failures: number;
}

function open(s: BreakerState, nowMs: number, config: BreakerConfig): BreakerState {
  return { ...s, state: "open", openedAtMs: nowMs, retryAtMs: nowMs + config.openMs, probes: 0 };
}

/** The state after an attempt's outcome. `wasProbe` says whether the attempt was a half-open probe. */
export function afterOutcome(s: BreakerState, success: boolean, wasProbe: boolean, window: WindowStats, nowMs: number, config: BreakerConfig): BreakerState {
  const consecutiveFailures = success ? 0 : s.consecutiveFailures + 1;
  switch (s.state) {
    case "half_open":
      if (!wasProbe) return { ...s, consecutiveFailures };
      return success ? { ...CLOSED } : open({ ...s, consecutiveFailures }, nowMs, config);
    case "open":
      // An attempt that was already in flight when the circuit opened decides nothing.
      return { ...s, consecutiveFailures };
    case "closed": {
      const next = { ...s, consecutiveFailures };
      if (success) return next;
      const byCount = consecutiveFailures >= config.consecutiveFailures;
      const byRate = window.attempts >= config.minAttempts && window.failures / window.attempts >= config.failureRate;
      return byCount || byRate ? open(next, nowMs, config) : next;
    }
  }
}

/** Whether a probe may be sent now. */
export function mayProbe(s: BreakerState, nowMs: number, config: BreakerConfig): boolean {
  if (s.state === "open") return s.retryAtMs !== undefined && s.retryAtMs <= nowMs;
  if (s.state === "half_open") return s.probes < config.maxProbes;
  return false;
}

/** The state once a probe has been claimed (requires mayProbe). */
export function probeClaimed(s: BreakerState): BreakerState {
  return { ...s, state: "half_open", probes: (s.state === "half_open" ? s.probes : 0) + 1 };
}

/** A claimed probe that found no job to send gives its slot back. */
export function probeReleased(s: BreakerState): BreakerState {
  return s.state === "half_open" ? { ...s, probes: Math.max(0, s.probes - 1) } : s;
}
