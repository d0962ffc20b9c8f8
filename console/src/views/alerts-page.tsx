// Operational alerts in one place: circuits that are open, endpoints Kapsel disabled, events that
// exhausted their retries, and Kapsel's own operational messages (types `kapsel.*`).
import { useQueries } from "@tanstack/react-query";
import { createQueryOptions, useQuery } from "@connectrpc/connect-query";
import { CircuitState, EventStatus, ManagementService } from "@kapsel/sdk/web";
import { isUnimplemented } from "../api/errors.ts";
import { CIRCUIT_LABEL, formatTime, relativeTime } from "../api/format.ts";
import { useClients } from "../api/use-clients.ts";
import { Badge, ErrorNote, Loading, Section } from "../components/ui.tsx";
import { Link } from "../router/router.tsx";
import { useEndpointIndex } from "./use-endpoints.ts";

export function AlertsPage() {
  const { transport } = useClients();
  const { endpoints } = useEndpointIndex();
  const watched = endpoints.filter((e) => e.enabled).slice(0, 100);
  const health = useQueries({
    queries: watched.map((e) => ({ ...createQueryOptions(ManagementService.method.getEndpointHealth, { endpointId: e.id }, { transport }), refetchInterval: 15_000 })),
  });
  const failed = useQuery(ManagementService.method.listEvents, { status: EventStatus.FAILED, pageSize: 20 }, { refetchInterval: 15_000 });
  const operational = useQuery(ManagementService.method.listMessages, { eventType: "kapsel.*", pageSize: 20 }, { refetchInterval: 15_000, retry: false });

  const open = health
    .map((h, i) => ({ health: h.data, endpoint: watched[i]! }))
    .filter((x) => x.health && x.health.circuitState !== CircuitState.CLOSED && x.health.circuitState !== CircuitState.UNSPECIFIED);
  const disabled = endpoints.filter((e) => !e.enabled);

  return (
    <div>
      <header className="page-head">
        <h1>Alerts</h1>
      </header>
      <Section title={`Open circuits (${open.length})`}>
        <ul className="alerts" data-testid="alert-circuits">
          {open.length === 0 && <li className="muted">Every circuit is closed.</li>}
          {open.map(({ health: h, endpoint }) => (
            <li key={endpoint.id} data-testid="alert-item">
              <Badge kind="bad">circuit {CIRCUIT_LABEL[h!.circuitState]}</Badge> <Link to={`/console/endpoints/${endpoint.id}`}>{endpoint.url}</Link>{" "}
              {h!.openedAt && <span className="muted">since {relativeTime(h!.openedAt)}</span>} · {h!.lastError}
            </li>
          ))}
        </ul>
      </Section>
      <Section title={`Disabled endpoints (${disabled.length})`}>
        <ul className="alerts" data-testid="alert-disabled">
          {disabled.length === 0 && <li className="muted">No endpoint is disabled.</li>}
          {disabled.map((e) => (
            <li key={e.id} data-testid="alert-item">
              <Badge kind="bad">disabled</Badge> <Link to={`/console/endpoints/${e.id}`}>{e.url}</Link> {e.disabledReason || "by a user"}
            </li>
          ))}
        </ul>
      </Section>
      <Section title="Failed events" actions={<Link to="/console/events?status=failed">all failed events</Link>}>
        <ErrorNote error={failed.error} />
        {failed.isPending ? (
          <Loading what="failed events" />
        ) : (
          <ul className="alerts" data-testid="alert-failed">
            {failed.data?.events.length === 0 && <li className="muted">No failed events.</li>}
            {failed.data?.events.map((e) => (
              <li key={e.id} data-testid="alert-item">
                <Badge kind="bad">failed</Badge> <Link to={`/console/events/${e.id}`}>{e.id.slice(0, 8)}…</Link> {e.eventType} · {e.attemptCount} attempt{e.attemptCount === 1 ? "" : "s"} ·
                received {formatTime(e.receivedAt)}
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="Operational events (kapsel.*)" actions={<Link to="/console/messages?type=kapsel.*">all</Link>}>
        {isUnimplemented(operational.error) ? (
          <p className="muted">This server does not emit operational events yet.</p>
        ) : (
          <>
            <ErrorNote error={operational.error} />
            <ul className="alerts" data-testid="alert-operational">
              {operational.data?.messages.length === 0 && <li className="muted">None.</li>}
              {operational.data?.messages.map((m) => (
                <li key={m.id} data-testid="alert-item">
                  <Badge kind="warn">{m.eventType}</Badge> <Link to={`/console/messages/${m.id}`}>{formatTime(m.receivedAt)}</Link>
                </li>
              ))}
            </ul>
          </>
        )}
      </Section>
    </div>
  );
}
