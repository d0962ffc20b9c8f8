// The log as this browser sees it: its identity, the keys the server presents and the ones you
// pinned, the last checkpoint verified here, this visit's consistency check, and a fork alarm's
// evidence.
import { useState } from "react";
import { DownloadLink } from "../components/download-link.tsx";
import { Section } from "../components/ui.tsx";
import { lastCheckpoint } from "../proof/checkpoint-store.ts";
import { fingerprint } from "../proof/pinned-keys.ts";
import { PinKeyPrompt } from "../proof/pin-key-prompt.tsx";
import { useTrust, type VisitCheck } from "../proof/trust-context.tsx";

function describeVisit(v: VisitCheck): string {
  if (v.state === "checking") return "Checking…";
  if (v.state === "error") return `The check could not run: ${v.message}`;
  const link = v.link;
  if (!link) return v.message ?? "Not checked.";
  switch (link.kind) {
    case "first":
      return `First checkpoint verified here: ${link.facts.treeSize} entries. Later visits will be checked against it.`;
    case "same":
      return `The newest checkpoint (${link.facts.treeSize} entries) is the one verified before.`;
    case "extends":
      return `Consistent: the newest checkpoint (${link.facts.treeSize} entries) extends the one verified before (${link.from} entries); the log only appended.`;
    case "older":
      return `The server shows a checkpoint of ${link.facts.treeSize} entries, older than the ${link.latest} verified before. It is consistent with it, but a log should not go back: the server may be showing you a stale view.`;
    case "unchecked":
      return `Not checked: ${link.reason}`;
    case "fork":
      return `FORK: ${link.alarm.reason}`;
  }
}

export function LogPage() {
  const trust = useTrust();
  const [confirm, setConfirm] = useState("");
  const last = trust.logName ? lastCheckpoint(trust.logName) : undefined;
  return (
    <div>
      <header className="page-head">
        <h1>Log & proofs</h1>
        <button className="small" onClick={() => void trust.refresh()}>
          Check again
        </button>
      </header>
      <p>
        Every delivery attempt is a receipt in an append-only Merkle log whose checkpoints the log signs. This page checks,
        in your browser and with keys you pinned, that the log only ever grows.
      </p>
      {trust.error && <p className="error">{trust.error}</p>}
      <dl className="facts">
        <dt>Log</dt>
        <dd>
          <code>{trust.logName ?? "…"}</code>
        </dd>
        <dt>This visit</dt>
        <dd data-testid="visit-check">{describeVisit(trust.visit)}</dd>
        <dt>Last verified here</dt>
        <dd>
          {last ? (
            <>
              {last.treeSize} entries, {last.verifiedAt}{" "}
              <DownloadLink text={last.text} filename="last-verified-checkpoint.txt">
                download
              </DownloadLink>
            </>
          ) : (
            "nothing yet"
          )}
        </dd>
      </dl>
      <PinKeyPrompt />
      <Section title="Pinned keys">
        {trust.pinned.length === 0 ? (
          <p className="muted">None.</p>
        ) : (
          <ul className="keys" data-testid="pinned-keys">
            {trust.pinned.map((k) => (
              <li key={k.vkey}>
                <code>{fingerprint(k.vkey)}</code> pinned {k.pinnedAt}
                <br />
                <small>{k.vkey}</small>
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="Keys the server presents">
        <ul className="keys">
          {trust.served.map((k) => (
            <li key={k.vkey}>
              <code>{fingerprint(k.vkey)}</code> {k.validUntil ? `retired ${k.validUntil.toISOString()}` : "current"}
              <br />
              <small>{k.vkey}</small>
            </li>
          ))}
        </ul>
      </Section>
      {trust.alarm && (
        <Section title="Fork alarm">
          <p>
            Keep the evidence offered in the red banner. To clear the alarm (for example after the operator explained and you
            decided to trust the log again), type <code>clear</code>: the next checkpoint then becomes the reference.
          </p>
          <input value={confirm} onChange={(e) => setConfirm(e.target.value)} data-testid="clear-alarm-confirm" />{" "}
          <button className="danger" disabled={confirm !== "clear"} onClick={() => trust.clearAlarm()} data-testid="clear-alarm">
            Clear the alarm
          </button>
        </Section>
      )}
      <Section title="Start over">
        <p className="muted">Forgets the pinned keys and the last verified checkpoint of this log in this browser.</p>
        <button className="danger" onClick={() => window.confirm("Forget the pinned keys and the remembered checkpoint?") && trust.forgetAll()}>
          Forget
        </button>
      </Section>
    </div>
  );
}
