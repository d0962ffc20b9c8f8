// The fields of an inbound source: how the sender's signature is checked and where the event
// type comes from. A scheme's preset sets the usual type origin (GitHub → X-GitHub-Event, …).
import { useState, type FormEvent } from "react";
import { EventTypeFrom, SourceScheme, type Source } from "@kapsel/sdk/web";
import { SCHEME_LABEL, splitList, TYPE_FROM_LABEL } from "../api/format.ts";
import { Field } from "../components/ui.tsx";

export interface SourceFields {
  name: string;
  scheme: SourceScheme;
  secret: string;
  header: string;
  toleranceSeconds: number;
  eventTypeFrom: EventTypeFrom;
  eventTypeHeader: string;
  eventTypePointer: string;
  channels: string[];
}

const SCHEMES = [SourceScheme.NONE, SourceScheme.HMAC_SHA256, SourceScheme.GITHUB, SourceScheme.STRIPE, SourceScheme.STANDARD_WEBHOOKS];
const TYPE_FROM = [
  EventTypeFrom.UNSPECIFIED,
  EventTypeFrom.NONE,
  EventTypeFrom.HEADER,
  EventTypeFrom.JSON_POINTER,
  EventTypeFrom.GITHUB,
  EventTypeFrom.STRIPE,
  EventTypeFrom.SHOPIFY,
  EventTypeFrom.STANDARD_WEBHOOKS,
];

export function SourceForm({ initial, submitLabel, busy, onSubmit }: { initial?: Source; submitLabel: string; busy: boolean; onSubmit: (f: SourceFields) => void }) {
  const [name, setName] = useState(initial?.name ?? "");
  const [scheme, setScheme] = useState<SourceScheme>(initial?.scheme ?? SourceScheme.NONE);
  const [secret, setSecret] = useState("");
  const [header, setHeader] = useState(initial?.header ?? "");
  const [tolerance, setTolerance] = useState(String(initial?.toleranceSeconds || 300));
  const [typeFrom, setTypeFrom] = useState<EventTypeFrom>(initial?.eventTypeFrom ?? EventTypeFrom.UNSPECIFIED);
  const [typeHeader, setTypeHeader] = useState(initial?.eventTypeHeader ?? "");
  const [typePointer, setTypePointer] = useState(initial?.eventTypePointer ?? "");
  const [channels, setChannels] = useState(initial?.channels.join(", ") ?? "");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onSubmit({
      name: name.trim(),
      scheme,
      secret: secret.trim(),
      header: header.trim(),
      toleranceSeconds: Number(tolerance),
      eventTypeFrom: typeFrom,
      eventTypeHeader: typeHeader.trim(),
      eventTypePointer: typePointer.trim(),
      channels: splitList(channels),
    });
  };
  return (
    <form className="grid-form" onSubmit={submit} data-testid="source-form">
      <Field label="Name">
        <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="stripe-live" data-testid="source-name" />
      </Field>
      <Field label="Signature check">
        <select value={scheme} onChange={(e) => setScheme(Number(e.target.value) as SourceScheme)} data-testid="source-scheme">
          {SCHEMES.map((s) => (
            <option key={s} value={s}>
              {SCHEME_LABEL[s]}
            </option>
          ))}
        </select>
      </Field>
      {scheme !== SourceScheme.NONE && !initial && (
        <Field label="Sender's secret" hint="Leave empty to have Kapsel generate one (shown once).">
          <input value={secret} onChange={(e) => setSecret(e.target.value)} autoComplete="off" data-testid="source-secret" />
        </Field>
      )}
      {scheme === SourceScheme.HMAC_SHA256 && (
        <Field label="Signature header" hint="default x-signature">
          <input value={header} onChange={(e) => setHeader(e.target.value)} />
        </Field>
      )}
      {(scheme === SourceScheme.STRIPE || scheme === SourceScheme.STANDARD_WEBHOOKS) && (
        <Field label="Clock tolerance (s)">
          <input type="number" min={1} value={tolerance} onChange={(e) => setTolerance(e.target.value)} />
        </Field>
      )}
      <Field label="Event type from">
        <select value={typeFrom} onChange={(e) => setTypeFrom(Number(e.target.value) as EventTypeFrom)} data-testid="source-type-from">
          {TYPE_FROM.map((t) => (
            <option key={t} value={t}>
              {TYPE_FROM_LABEL[t]}
            </option>
          ))}
        </select>
      </Field>
      {typeFrom === EventTypeFrom.HEADER && (
        <Field label="Type header">
          <input value={typeHeader} onChange={(e) => setTypeHeader(e.target.value)} placeholder="x-event-type" />
        </Field>
      )}
      {typeFrom === EventTypeFrom.JSON_POINTER && (
        <Field label="JSON pointer">
          <input value={typePointer} onChange={(e) => setTypePointer(e.target.value)} placeholder="/type" />
        </Field>
      )}
      <Field label="Channels" hint="Every message from this source carries these channels.">
        <input value={channels} onChange={(e) => setChannels(e.target.value)} />
      </Field>
      <div>
        <button type="submit" disabled={busy} data-testid="source-submit">
          {busy ? "Saving…" : submitLabel}
        </button>
      </div>
    </form>
  );
}
