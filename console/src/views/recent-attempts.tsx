// An endpoint's latest attempts: its ten newest events, each with its attempts, newest first.
import { useQueries } from "@tanstack/react-query";
import { createQueryOptions, useQuery } from "@connectrpc/connect-query";
import { ManagementService } from "@kapsel/sdk/web";
import { formatTime, OUTCOME_LABEL } from "../api/format.ts";
import { useClients } from "../api/use-clients.ts";
import { ErrorNote, Loading } from "../components/ui.tsx";
import { Link } from "../router/router.tsx";

export function RecentAttempts({ endpointId }: { endpointId: string }) {
  const { transport } = useClients();
  const events = useQuery(ManagementService.method.listEvents, { endpointId, pageSize: 10 });
  const details = useQueries({
    queries: (events.data?.events ?? []).map((e) => createQueryOptions(ManagementService.method.getEvent, { eventId: e.id }, { transport })),
  });
  if (events.isPending) return <Loading what="attempts" />;
  if (events.error) return <ErrorNote error={events.error} />;
  const attempts = details
    .flatMap((d) => (d.data?.event ? d.data.event.attempts.map((a) => ({ a, eventId: d.data!.event!.id })) : []))
    .sort((x, y) => Number((y.a.startedAt?.seconds ?? 0n) - (x.a.startedAt?.seconds ?? 0n)) || (y.a.startedAt?.nanos ?? 0) - (x.a.startedAt?.nanos ?? 0))
    .slice(0, 20);
  if (attempts.length === 0) return <p className="muted">No attempts yet.</p>;
  return (
    <table className="list" data-testid="recent-attempts">
      <thead>
        <tr>
          <th>Started</th>
          <th>Event</th>
          <th>#</th>
          <th>Outcome</th>
          <th>Status</th>
          <th>Duration</th>
          <th>Error</th>
        </tr>
      </thead>
      <tbody>
        {attempts.map(({ a, eventId }) => (
          <tr key={a.id}>
            <td>{formatTime(a.startedAt)}</td>
            <td>
              <Link to={`/console/events/${eventId}`}>
                <code>{eventId.slice(0, 8)}…</code>
              </Link>
            </td>
            <td>{a.attempt}</td>
            <td>{OUTCOME_LABEL[a.outcome]}</td>
            <td>{a.statusCode || "—"}</td>
            <td>{a.durationMs} ms</td>
            <td className="truncate">{a.error}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
