// Small building blocks every view uses.
import { useState, type ReactNode } from "react";
import { describeError } from "../api/errors.ts";
import { STATUS_LABEL } from "../api/format.ts";

export function ErrorNote({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {what ? `${what}: ` : ""}
      {describeError(error)}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return <p className="muted">Loading {what}…</p>;
}

export function StatusBadge({ status }: { status: number }) {
  const label = STATUS_LABEL[status] ?? "unknown";
  return <span className={`badge status-${label}`}>{label}</span>;
}

export function Badge({ kind, children }: { kind: string; children: ReactNode }) {
  return <span className={`badge ${kind}`}>{children}</span>;
}

/** A secret shown once, with a copy button and a plain warning. */
export function SecretOnce({ label, secret, onDone }: { label: string; secret: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret-once" role="status" data-testid="secret-once">
      <strong>{label}</strong>
      <p>Shown only now: Kapsel keeps only a hash or an encrypted copy. Store it where it is needed.</p>
      <code data-testid="secret-value">{secret}</code>{" "}
      <button
        type="button"
        onClick={() => {
          void navigator.clipboard?.writeText(secret).then(() => setCopied(true), () => setCopied(false));
        }}
      >
        {copied ? "Copied" : "Copy"}
      </button>{" "}
      <button type="button" onClick={onDone}>
        I have stored it
      </button>
    </div>
  );
}

export function Field({ label, hint, children }: { label: string; hint?: string; children: ReactNode }) {
  return (
    <label className="field">
      <span>{label}</span>
      {children}
      {hint && <small>{hint}</small>}
    </label>
  );
}

export function Section({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section>
      <header className="section-head">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

export function Copyable({ text, testId }: { text: string; testId?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <span className="copyable">
      <code data-testid={testId}>{text}</code>{" "}
      <button type="button" className="small" onClick={() => void navigator.clipboard?.writeText(text).then(() => setCopied(true))}>
        {copied ? "Copied" : "Copy"}
      </button>
    </span>
  );
}
