// A loud notice whenever the keys the server presents differ from the pinned ones. The console
// never adopts a key by itself: verification keeps using only the pinned keys until the user
// pins another one here, knowingly.
import { useState } from "react";
import { fingerprint } from "./pinned-keys.ts";
import { useTrust } from "./trust-context.tsx";

export function KeyWarning() {
  const trust = useTrust();
  const [confirmed, setConfirmed] = useState(false);
  if (trust.status !== "rotated" && trust.status !== "replaced") return null;
  const unpinned = trust.served.filter((k) => !trust.pinned.some((p) => p.vkey === k.vkey));
  const replaced = trust.status === "replaced";
  return (
    <div className={replaced ? "key-warning loud" : "key-warning"} role="alert" data-testid="key-warning" data-status={trust.status}>
      <strong>
        {replaced
          ? "Warning: the log key changed. The server no longer presents the key you pinned."
          : "The log presents a new signing key that you have not pinned."}
      </strong>
      <p>
        {replaced
          ? "If the log's operator did not announce a new key, this server may be presenting a log that is not the one you trusted. "
          : "The key you pinned is still listed as retired, which is what a key rotation looks like. "}
        Proofs are verified only with your pinned keys, so proofs signed by the new key fail until you pin it. Compare its
        fingerprint with one obtained from the operator out of band before pinning it.
      </p>
      <ul className="keys">
        {trust.pinned.map((k) => (
          <li key={k.vkey}>
            pinned: <code>{fingerprint(k.vkey)}</code> <small>{k.vkey}</small>
          </li>
        ))}
        {unpinned.map((k) => (
          <li key={k.vkey}>
            presented now: <code>{fingerprint(k.vkey)}</code> <small>{k.vkey}</small>
          </li>
        ))}
      </ul>
      <label>
        <input type="checkbox" checked={confirmed} onChange={(e) => setConfirmed(e.target.checked)} data-testid="confirm-new-key" /> I checked
        this fingerprint with the log's operator
      </label>{" "}
      <button disabled={!confirmed} onClick={() => void trust.pinServed(unpinned.map((k) => k.vkey))} data-testid="pin-new-key">
        Pin the new key
      </button>
    </div>
  );
}
