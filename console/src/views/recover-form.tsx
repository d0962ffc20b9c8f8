// Bulk recovery: re-queue the failed events of an endpoint (or of a type) received in a window.
import { useState, type FormEvent } from "react";
import { useMutation } from "@connectrpc/connect-query";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useQueryClient } from "@tanstack/react-query";
import { ManagementService, type Endpoint } from "@kapsel/sdk/web";
import { fromLocalInput, toLocalInput } from "../api/format.ts";
import { ErrorNote } from "../components/ui.tsx";

export function RecoverForm({ endpoints, defaultEndpoint, defaultType }: { endpoints: Endpoint[]; defaultEndpoint: string; defaultType: string }) {
  const [endpointId, setEndpointId] = useState(defaultEndpoint);
  const [eventType, setEventType] = useState(defaultType);
  const [since, setSince] = useState(() => toLocalInput(new Date(Date.now() - 24 * 3600_000)));
  const [until, setUntil] = useState("");
  const [done, setDone] = useState<string>();
  const queryClient = useQueryClient();
  const recover = useMutation(ManagementService.method.recoverEvents, {
    onSuccess: (res) => {
      setDone(`${res.count} failed event${res.count === 1 ? "" : "s"} put back in the queue.`);
      void queryClient.invalidateQueries();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setDone(undefined);
    const from = fromLocalInput(since);
    const end = fromLocalInput(until);
    recover.mutate({
      endpointId,
      eventType: eventType.trim(),
      since: from ? timestampFromDate(from) : undefined,
      until: end ? timestampFromDate(end) : undefined,
    });
  };
  return (
    <details className="recover">
      <summary>Recover failed events in a time window</summary>
      <form onSubmit={submit} className="inline-form" data-testid="recover-form">
        <label>
          Endpoint
          <select value={endpointId} onChange={(e) => setEndpointId(e.target.value)}>
            <option value="">any (give a type)</option>
            {endpoints.map((ep) => (
              <option key={ep.id} value={ep.id}>
                {ep.description || ep.url}
              </option>
            ))}
          </select>
        </label>
        <label>
          Type
          <input value={eventType} onChange={(e) => setEventType(e.target.value)} placeholder="optional" />
        </label>
        <label>
          Received from
          <input type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} required />
        </label>
        <label>
          until
          <input type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} placeholder="now" />
        </label>
        <button type="submit" disabled={recover.isPending || (!endpointId && !eventType.trim())} data-testid="recover-submit">
          Recover
        </button>
      </form>
      {done && (
        <p className="ok" data-testid="recover-result">
          {done}
        </p>
      )}
      <ErrorNote error={recover.error} what="Recovery failed" />
    </details>
  );
}
