// What the console trusts about the log, shared by every view: the keys the server presents, the
// keys the user pinned, how the two compare, the outcome of this visit's consistency check, and a
// standing fork alarm. On every visit (every page load once signed in) the newest checkpoint is
// verified with the pinned keys and linked to the last verified one.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { KapselClient } from "@kapsel/sdk/web";
import { describeError } from "../api/errors.ts";
import { clearForkAlarm, forgetCheckpoint, forkAlarm, type ForkAlarm } from "./checkpoint-store.ts";
import { linkToLast, type LinkResult, type ProofSource } from "./log-consistency.ts";
import { forgetKeys, keyStatus, pinKeys, pinnedKeys, type KeyStatus, type PinnedKey, type ServedKey } from "./pinned-keys.ts";
import { downloadBundle } from "./download-bundle.ts";
import { verifyAttempt, type VerifyReport } from "./verify-attempt.ts";

export interface VisitCheck {
  state: "checking" | "done" | "error";
  link?: LinkResult;
  /** The newest checkpoint's size. */
  treeSize?: bigint;
  message?: string;
}

export interface Trust {
  loading: boolean;
  error?: string;
  logName?: string;
  served: ServedKey[];
  pinned: PinnedKey[];
  status: KeyStatus;
  visit: VisitCheck;
  alarm?: ForkAlarm;
  /** Pins the keys the server presents now (first use, or after a rotation the user accepts). */
  pinServed(vkeys: readonly string[]): Promise<void>;
  verify(args: { attemptId: string; eventId: string; payload?: Uint8Array; payloadName?: string }): Promise<VerifyReport>;
  /** Re-reads keys and re-runs the consistency check. */
  refresh(): Promise<void>;
  clearAlarm(): void;
  forgetAll(): void;
}

const TrustContext = createContext<Trust | undefined>(undefined);

export function useTrust(): Trust {
  const trust = useContext(TrustContext);
  if (!trust) throw new Error("useTrust outside TrustProvider");
  return trust;
}

export function TrustProvider({ client, children }: { client: KapselClient; children: ReactNode }) {
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const [logName, setLogName] = useState<string>();
  const [served, setServed] = useState<ServedKey[]>([]);
  const [pinned, setPinned] = useState<PinnedKey[]>([]);
  const [visit, setVisit] = useState<VisitCheck>({ state: "checking" });
  const [alarm, setAlarm] = useState<ForkAlarm>();

  const proofs: ProofSource = useCallback(
    async (oldSize, newSize) => (await client.attestation.getConsistencyProof({ oldSize, newSize })).proof,
    [client],
  );

  const check = useCallback(async (name: string, keys: readonly PinnedKey[]) => {
    if (keys.length === 0) {
      setVisit({ state: "done", message: "no log key pinned yet" });
      return;
    }
    setVisit({ state: "checking" });
    try {
      const newest = await client.attestation.getCheckpoint({});
      const link = await linkToLast(name, newest.checkpoint, keys.map((k) => k.vkey), proofs);
      setVisit({ state: "done", link, treeSize: newest.treeSize });
    } catch (err) {
      setVisit({ state: "error", message: describeError(err) });
    }
    setAlarm(forkAlarm(name));
  }, [client, proofs]);

  const load = useCallback(async () => {
    setLoading(true);
    try {
      const [{ keys }, checkpoint] = await Promise.all([client.attestation.getPublicKeys({}), client.attestation.getCheckpoint({})]);
      const name = checkpoint.origin;
      const servedKeys = keys.map((k) => ({ vkey: k.vkey, keyId: k.keyId, validUntil: k.validUntil ? timestampDate(k.validUntil) : undefined }));
      const pins = pinnedKeys(name);
      setLogName(name);
      setServed(servedKeys);
      setPinned(pins);
      setAlarm(forkAlarm(name));
      setError(undefined);
      await check(name, pins);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setLoading(false);
    }
  }, [client, check]);

  useEffect(() => {
    void load();
  }, [load]);

  const pinServed = useCallback(async (vkeys: readonly string[]) => {
    if (!logName) return;
    const pins = pinKeys(logName, vkeys);
    setPinned(pins);
    await check(logName, pins);
  }, [logName, check]);

  const verify: Trust["verify"] = useCallback(async (args) => {
    if (!logName) return { ok: false, code: "NO_LOG", text: "FAILED: the log's identity is not known yet (its checkpoint could not be read)." };
    const keys = pinnedKeys(logName).map((k) => k.vkey);
    if (keys.length === 0) return { ok: false, code: "NO_PINNED_KEY", text: "FAILED: no log key is pinned; pin one first." };
    const report = await verifyAttempt({
      ...args,
      logName,
      pinned: keys,
      proofs,
      fetchBundle: (attemptId) => downloadBundle(client, attemptId),
    });
    setAlarm(forkAlarm(logName));
    return report;
  }, [client, logName, proofs]);

  const trust: Trust = {
    loading,
    error,
    logName,
    served,
    pinned,
    status: keyStatus(pinned, served),
    visit,
    alarm,
    pinServed,
    verify,
    refresh: load,
    clearAlarm: () => {
      if (!logName) return;
      clearForkAlarm(logName);
      setAlarm(undefined);
    },
    forgetAll: () => {
      if (!logName) return;
      forgetKeys(logName);
      forgetCheckpoint(logName);
      setPinned([]);
      setVisit({ state: "done", message: "no log key pinned yet" });
    },
  };
  return <TrustContext.Provider value={trust}>{children}</TrustContext.Provider>;
}
