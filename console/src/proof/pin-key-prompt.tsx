// First use: no log key is pinned for this log yet. Show what the server presents and ask the
// user to pin it (trust on first use, stated plainly); nothing is verified before that.
import { fingerprint } from "./pinned-keys.ts";
import { useTrust } from "./trust-context.tsx";

export function PinKeyPrompt({ onPinned }: { onPinned?: () => void }) {
  const trust = useTrust();
  if (trust.status !== "unpinned") return null;
  const current = trust.served.filter((k) => k.validUntil === undefined);
  return (
    <div className="pin-prompt" data-testid="pin-prompt">
      <strong>Pin the log's key before verifying.</strong>
      <p>
        Proofs are checked against a log key you pin in this browser. This server presents the key below for the log{" "}
        <code>{trust.logName}</code>. Pinning it means trusting it from now on: later proofs must be signed by it, and a
        change of key will be shown as a warning. If you can, compare the fingerprint with one from the operator
        (<code>npx kapsel keys list</code>).
      </p>
      <ul className="keys">
        {trust.served.map((k) => (
          <li key={k.vkey}>
            <code>{fingerprint(k.vkey)}</code> {k.validUntil ? `(retired ${k.validUntil.toISOString()})` : "(current)"}
            <br />
            <small data-testid="served-vkey">{k.vkey}</small>
          </li>
        ))}
      </ul>
      <button
        data-testid="pin-key"
        disabled={current.length === 0 && trust.served.length === 0}
        onClick={() => {
          void trust.pinServed(trust.served.map((k) => k.vkey)).then(onPinned);
        }}
      >
        Pin this key
      </button>
    </div>
  );
}
