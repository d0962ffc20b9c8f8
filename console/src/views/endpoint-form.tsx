// The fields of an endpoint, for creating one and for editing one. Lists (event types, channels)
// are edited as comma- or space-separated text.
import { useState, type FormEvent } from "react";
import type { Endpoint } from "@kapsel/sdk/web";
import { splitList } from "../api/format.ts";
import { Field } from "../components/ui.tsx";

export interface EndpointFields {
  url: string;
  description: string;
  allowHttp: boolean;
  eventTypes: string[];
  channels: string[];
  maxAttempts: number;
  timeoutMs: number;
  enabled: boolean;
}

export function EndpointForm({
  initial,
  submitLabel,
  busy,
  onSubmit,
}: {
  initial?: Endpoint;
  submitLabel: string;
  busy: boolean;
  onSubmit: (fields: EndpointFields) => void;
}) {
  const [url, setUrl] = useState(initial?.url ?? "https://");
  const [description, setDescription] = useState(initial?.description ?? "");
  const [allowHttp, setAllowHttp] = useState(initial?.allowHttp ?? false);
  const [eventTypes, setEventTypes] = useState(initial?.eventTypes.join(", ") ?? "");
  const [channels, setChannels] = useState(initial?.channels.join(", ") ?? "");
  const [maxAttempts, setMaxAttempts] = useState(String(initial?.maxAttempts ?? 10));
  const [timeoutMs, setTimeoutMs] = useState(String(initial?.timeoutMs ?? 15000));
  const [enabled, setEnabled] = useState(initial?.enabled ?? true);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    onSubmit({
      url: url.trim(),
      description: description.trim(),
      allowHttp,
      eventTypes: splitList(eventTypes),
      channels: splitList(channels),
      maxAttempts: Number(maxAttempts),
      timeoutMs: Number(timeoutMs),
      enabled,
    });
  };

  return (
    <form className="grid-form" onSubmit={submit} data-testid="endpoint-form">
      <Field label="Destination URL">
        <input value={url} onChange={(e) => setUrl(e.target.value)} required data-testid="endpoint-url" />
      </Field>
      <Field label="Description">
        <input value={description} onChange={(e) => setDescription(e.target.value)} data-testid="endpoint-description" />
      </Field>
      <Field label="Event types" hint="Exact names or prefix wildcards (invoice.*), comma-separated; empty receives every type.">
        <input value={eventTypes} onChange={(e) => setEventTypes(e.target.value)} data-testid="endpoint-types" />
      </Field>
      <Field label="Channels" hint="When set, only messages carrying one of these channels arrive.">
        <input value={channels} onChange={(e) => setChannels(e.target.value)} data-testid="endpoint-channels" />
      </Field>
      <Field label="Attempts before giving up" hint="1 to 50">
        <input type="number" min={1} max={50} value={maxAttempts} onChange={(e) => setMaxAttempts(e.target.value)} data-testid="endpoint-max-attempts" />
      </Field>
      <Field label="Timeout per attempt (ms)">
        <input type="number" min={100} max={60000} value={timeoutMs} onChange={(e) => setTimeoutMs(e.target.value)} data-testid="endpoint-timeout" />
      </Field>
      <label className="check">
        <input type="checkbox" checked={allowHttp} onChange={(e) => setAllowHttp(e.target.checked)} data-testid="endpoint-allow-http" /> Allow plain
        http:// (no TLS)
      </label>
      <label className="check">
        <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} data-testid="endpoint-enabled" /> Enabled
      </label>
      <div>
        <button type="submit" disabled={busy} data-testid="endpoint-submit">
          {busy ? "Saving…" : submitLabel}
        </button>
      </div>
    </form>
  );
}
