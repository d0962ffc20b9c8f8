// One message: its payload and the events it fanned out to, each with its status.
import { useQuery } from "@connectrpc/connect-query";
import { ManagementService } from "@kapsel/sdk/web";
import { formatBytes, formatTime, payloadPreview } from "../api/format.ts";
import { ErrorNote, Loading, StatusBadge } from "../components/ui.tsx";
import { Link } from "../router/router.tsx";
import { useEndpointIndex } from "./use-endpoints.ts";

export function MessagePage({ messageId }: { messageId: string }) {
  const query = useQuery(ManagementService.method.getMessage, { messageId });
  const { byId } = useEndpointIndex();
  if (query.isPending) return <Loading what="the message" />;
  const m = query.data?.message;
  if (query.error || !m) return <ErrorNote error={query.error} what="Could not load the message" />;
  return (
    <div>
      <header className="page-head">
        <h1>
          Message <code>{m.id}</code>
        </h1>
      </header>
      <dl className="facts">
        <dt>Type</dt>
        <dd>{m.eventType || "—"}</dd>
        <dt>Channels</dt>
        <dd>{m.channels.join(", ") || "—"}</dd>
        <dt>Received</dt>
        <dd>{formatTime(m.receivedAt)}</dd>
        <dt>Source</dt>
        <dd>{m.sourceId ? <Link to={`/console/sources/${m.sourceId}`}>{m.sourceId}</Link> : "API"}</dd>
        <dt>Idempotency key</dt>
        <dd>{m.idempotencyKey || "—"}</dd>
        <dt>Payload</dt>
        <dd>
          {m.contentType} · {formatBytes(m.payloadSize)}
        </dd>
      </dl>
      <h2>Delivered to {m.events.length} endpoint{m.events.length === 1 ? "" : "s"}</h2>
      {m.events.length === 0 ? (
        <p className="muted">No endpoint was subscribed to this message's type and channels when it arrived.</p>
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th>Endpoint</th>
              <th>Status</th>
              <th>Attempts</th>
              <th>Event</th>
            </tr>
          </thead>
          <tbody>
            {m.events.map((e) => (
              <tr key={e.eventId} data-testid="message-event-row">
                <td className="truncate">{byId.get(e.endpointId)?.url ?? e.endpointId}</td>
                <td>
                  <StatusBadge status={e.status} />
                </td>
                <td>{e.attemptCount}</td>
                <td>
                  <Link to={`/console/events/${e.eventId}`}>
                    <code>{e.eventId.slice(0, 8)}…</code>
                  </Link>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Payload</h2>
      <pre className="payload">{payloadPreview(m.payload) || "(empty)"}</pre>
    </div>
  );
}
