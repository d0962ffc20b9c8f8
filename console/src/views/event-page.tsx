// One event: what was received, where it goes, every delivery attempt (outcome, status, duration,
// response excerpt, the headers sent) with an in-page proof check for each, and a retry for a
// failed event. While the event is not final the page follows it with WatchEvent.
import { useEffect, useState } from "react";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { EventStatus, ManagementService, type Attempt, type Event } from "@kapsel/sdk/web";
import { formatBytes, formatTime, OUTCOME_LABEL, payloadPreview, relativeTime } from "../api/format.ts";
import { useClients } from "../api/use-clients.ts";
import { DownloadLink } from "../components/download-link.tsx";
import { ErrorNote, Loading, StatusBadge } from "../components/ui.tsx";
import { VerifyAttemptButton, type PayloadFile } from "../proof/verify-attempt-button.tsx";
import { Link } from "../router/router.tsx";
import { useEndpointIndex } from "./use-endpoints.ts";

const FINAL = new Set<number>([EventStatus.DELIVERED, EventStatus.FAILED]);
const USER_AGENT = "Kapsel-Webhooks/0.1";

/** Follows an event with WatchEvent until it is final; returns its latest state. */
function useLiveEvent(eventId: string, initial: Event | undefined): Event | undefined {
  const { client } = useClients();
  const [live, setLive] = useState<Event>();
  const final = initial !== undefined && FINAL.has(initial.status);
  useEffect(() => {
    if (!initial || final) return;
    const abort = new AbortController();
    void (async () => {
      try {
        for await (const res of client.management.watchEvent({ eventId }, { signal: abort.signal, timeoutMs: 10 * 60_000 })) {
          if (res.event) setLive(res.event);
        }
      } catch {
        // The page still shows the last state; a reload follows again.
      }
    })();
    return () => abort.abort();
  }, [client, eventId, initial === undefined, final]);
  if (!initial) return undefined;
  if (!live || live.attemptCount < initial.attemptCount) return initial;
  return { ...initial, status: live.status, attemptCount: live.attemptCount, attempts: live.attempts, nextAttemptAt: live.nextAttemptAt };
}

export function EventPage({ eventId }: { eventId: string }) {
  const query = useQuery(ManagementService.method.getEvent, { eventId });
  const event = useLiveEvent(eventId, query.data?.event);
  const { byId } = useEndpointIndex();
  const queryClient = useQueryClient();
  const retry = useMutation(ManagementService.method.retryEvent, { onSuccess: () => void queryClient.invalidateQueries() });
  const [payload, setPayload] = useState<PayloadFile>();

  if (query.isPending) return <Loading what="the event" />;
  if (query.error || !event) return <ErrorNote error={query.error} what="Could not load the event" />;
  const endpoint = byId.get(event.endpointId);
  const preview = payloadPreview(event.payload);

  return (
    <div className="event-page">
      <header className="page-head">
        <h1>
          Event <code>{event.id}</code>
        </h1>
        <span data-testid="event-status" data-status={event.status}>
          <StatusBadge status={event.status} />
        </span>
        {event.status === EventStatus.FAILED && (
          <button onClick={() => retry.mutate({ eventId: event.id })} disabled={retry.isPending} data-testid="retry-event">
            Retry delivery
          </button>
        )}
      </header>
      <ErrorNote error={retry.error} what="Retry failed" />
      {retry.isSuccess && <p className="ok">Put back in the queue.</p>}
      <dl className="facts">
        <dt>Endpoint</dt>
        <dd>
          <Link to={`/console/endpoints/${event.endpointId}`}>{endpoint?.url ?? event.endpointId}</Link>
        </dd>
        <dt>Type</dt>
        <dd>{event.eventType || "—"}</dd>
        <dt>Message</dt>
        <dd>{event.messageId ? <Link to={`/console/messages/${event.messageId}`}>{event.messageId}</Link> : "—"}</dd>
        <dt>Channels</dt>
        <dd>{event.channels.length ? event.channels.join(", ") : "—"}</dd>
        <dt>Received</dt>
        <dd>
          {formatTime(event.receivedAt)} <span className="muted">({relativeTime(event.receivedAt)})</span>
        </dd>
        <dt>Attempts</dt>
        <dd>
          {event.attemptCount}
          {event.status === EventStatus.PENDING && event.nextAttemptAt && <> · next {relativeTime(event.nextAttemptAt)}</>}
        </dd>
        <dt>Idempotency key</dt>
        <dd>{event.idempotencyKey || "—"}</dd>
        <dt>Request id</dt>
        <dd>
          <code>{event.requestId || "—"}</code>
        </dd>
        <dt>Payload</dt>
        <dd>
          {event.contentType} · {formatBytes(event.payloadSize)}{" "}
          <DownloadLink text={event.payload as Uint8Array<ArrayBuffer>} filename={`event-${event.id}.body`}>
            download
          </DownloadLink>
        </dd>
      </dl>
      {Object.keys(event.headers).length > 0 && (
        <>
          <h2>Kept headers</h2>
          <table className="kv">
            <tbody>
              {Object.entries(event.headers).map(([k, v]) => (
                <tr key={k}>
                  <th>{k}</th>
                  <td>{v}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h2>Payload</h2>
      <pre className="payload">{preview || "(empty)"}</pre>

      <h2>Delivery attempts</h2>
      <div className="payload-check">
        <label>
          Also check a payload file against the receipts:{" "}
          <input
            type="file"
            data-testid="payload-file"
            onChange={(e) => {
              const file = e.target.files?.[0];
              if (!file) return setPayload(undefined);
              void file.arrayBuffer().then((b) => setPayload({ name: file.name, bytes: new Uint8Array(b) }));
            }}
          />
        </label>{" "}
        {payload && <span className="muted">using {payload.name} ({formatBytes(payload.bytes.length)})</span>}
      </div>
      {event.attempts.length === 0 && <p className="muted">No attempt yet.</p>}
      {[...event.attempts].reverse().map((a) => (
        <AttemptCard key={a.id} attempt={a} event={event} payload={payload} />
      ))}
    </div>
  );
}

function AttemptCard({ attempt: a, event, payload }: { attempt: Attempt; event: Event; payload?: PayloadFile }) {
  const seconds = a.startedAt ? String(a.startedAt.seconds) : "?";
  const sent: [string, string][] = [
    ["content-type", event.contentType],
    ...Object.entries(event.headers),
    ["user-agent", `${USER_AGENT} (…)`],
    ["webhook-id", event.id],
    ["webhook-timestamp", `${seconds} (± 1 s: the second the attempt started)`],
    ["webhook-signature", "v1,<HMAC-SHA256 with the endpoint's signing secret; not stored>"],
  ];
  return (
    <article className={`attempt outcome-${OUTCOME_LABEL[a.outcome]?.replace(/\s/g, "-")}`} data-testid="attempt" data-attempt-id={a.id}>
      <header>
        <strong>Attempt {a.attempt}</strong> <span className="badge">{OUTCOME_LABEL[a.outcome]}</span>
        {a.statusCode !== 0 && <span className="badge">HTTP {a.statusCode}</span>}
        <span className="muted">
          {formatTime(a.startedAt)} · {a.durationMs} ms
        </span>
      </header>
      <dl className="facts">
        <dt>URL</dt>
        <dd>
          <code>{a.url}</code>
        </dd>
        {a.error && (
          <>
            <dt>Error</dt>
            <dd>{a.error}</dd>
          </>
        )}
        <dt>Response</dt>
        <dd>
          <pre className="excerpt" data-testid="response-excerpt">{a.responseExcerpt || "(empty)"}</pre>
        </dd>
        <dt>Body SHA-256</dt>
        <dd>
          <code>{a.payloadSha256}</code>
        </dd>
      </dl>
      <details>
        <summary>Headers sent</summary>
        <table className="kv" data-testid="headers-sent">
          <tbody>
            {sent.map(([k, v]) => (
              <tr key={k}>
                <th>{k}</th>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
      <VerifyAttemptButton attemptId={a.id} eventId={event.id} payload={payload} />
    </article>
  );
}
