// One endpoint: its settings (editable), the gateway URL for senders that target it directly,
// signing-secret rotation (shown once), deletion, and its health: circuit breaker, success rate
// and latency over time, recent attempts.
import { useState } from "react";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useQueryClient } from "@tanstack/react-query";
import { CircuitState, ManagementService } from "@kapsel/sdk/web";
import { serverOrigin } from "../api/clients.ts";
import { CIRCUIT_LABEL, formatTime, relativeTime } from "../api/format.ts";
import { Badge, Copyable, ErrorNote, Loading, SecretOnce, Section } from "../components/ui.tsx";
import { Link, navigate } from "../router/router.tsx";
import { EndpointForm } from "./endpoint-form.tsx";
import { RecentAttempts } from "./recent-attempts.tsx";
import { StatsChart } from "./stats-chart.tsx";

const RANGES = { "1 h": 3600, "24 h": 86_400, "7 days": 7 * 86_400, "30 days": 30 * 86_400 } as const;

export function EndpointPage({ endpointId }: { endpointId: string }) {
  const queryClient = useQueryClient();
  const query = useQuery(ManagementService.method.getEndpoint, { endpointId });
  const health = useQuery(ManagementService.method.getEndpointHealth, { endpointId }, { refetchInterval: 10_000 });
  const [range, setRange] = useState<keyof typeof RANGES>("24 h");
  // Rounded to the minute so the query key stays stable between renders.
  const [now] = useState(() => Math.ceil(Date.now() / 60_000) * 60_000);
  const stats = useQuery(ManagementService.method.getEndpointStats, {
    endpointId,
    since: timestampFromDate(new Date(now - RANGES[range] * 1000)),
    until: timestampFromDate(new Date(now)),
  });
  const [secret, setSecret] = useState<string>();
  const [saved, setSaved] = useState(false);
  const update = useMutation(ManagementService.method.updateEndpoint, {
    onSuccess: () => {
      setSaved(true);
      void queryClient.invalidateQueries();
    },
  });
  const rotate = useMutation(ManagementService.method.rotateEndpointSecret, {
    onSuccess: (res) => {
      setSecret(res.signingSecret);
      void queryClient.invalidateQueries();
    },
  });
  const remove = useMutation(ManagementService.method.deleteEndpoint, {
    onSuccess: () => {
      void queryClient.invalidateQueries();
      navigate("/console/endpoints");
    },
  });

  if (query.isPending) return <Loading what="the endpoint" />;
  const ep = query.data?.endpoint;
  if (query.error || !ep) return <ErrorNote error={query.error} what="Could not load the endpoint" />;
  const h = health.data;

  return (
    <div className="endpoint-page">
      <header className="page-head">
        <h1 className="truncate">{ep.description || ep.url}</h1>
        {ep.enabled ? <Badge kind="ok">enabled</Badge> : <Badge kind="bad">disabled{ep.disabledReason ? `: ${ep.disabledReason}` : ""}</Badge>}
        <Link to={`/console/events?endpoint=${ep.id}`}>Its events</Link>
      </header>
      <dl className="facts">
        <dt>Endpoint id</dt>
        <dd>
          <code>{ep.id}</code>
        </dd>
        <dt>Direct ingest URL</dt>
        <dd>
          <Copyable text={`${serverOrigin()}/ingest/${ep.id}`} /> <small className="muted">(for a sender that targets only this endpoint)</small>
        </dd>
        <dt>Signing secret</dt>
        <dd>
          issued {formatTime(ep.secretRotatedAt)}{" "}
          <button
            className="small"
            data-testid="rotate-secret"
            disabled={rotate.isPending}
            onClick={() => window.confirm("Issue a new signing secret? The current one keeps signing for 24 hours.") && rotate.mutate({ endpointId })}
          >
            Rotate
          </button>
        </dd>
      </dl>
      {secret && <SecretOnce label="New signing secret (the previous one also signs for 24 hours)" secret={secret} onDone={() => setSecret(undefined)} />}
      <ErrorNote error={rotate.error} what="Rotation failed" />

      <Section title="Health">
        <ErrorNote error={health.error} what="Health unavailable" />
        {h && (
          <dl className="facts" data-testid="endpoint-health">
            <dt>Circuit</dt>
            <dd>
              <Badge kind={h.circuitState === CircuitState.CLOSED ? "ok" : "bad"}>{CIRCUIT_LABEL[h.circuitState]}</Badge>
              {h.openedAt && <span className="muted"> last opened {relativeTime(h.openedAt)}</span>}
            </dd>
            <dt>Success, last hour</dt>
            <dd>
              {h.recentAttempts === 0 ? "no attempts" : `${(h.successRate * 100).toFixed(1)} % of ${h.recentAttempts} attempts`}
            </dd>
            <dt>Consecutive failures</dt>
            <dd>{h.consecutiveFailures}</dd>
            <dt>Waiting</dt>
            <dd>{h.pendingEvents} events</dd>
            <dt>Last attempt</dt>
            <dd>{h.lastAttemptAt ? relativeTime(h.lastAttemptAt) : "never"}</dd>
            {h.lastError && (
              <>
                <dt>Last error</dt>
                <dd>{h.lastError}</dd>
              </>
            )}
          </dl>
        )}
        <div className="range-picker">
          {(Object.keys(RANGES) as (keyof typeof RANGES)[]).map((r) => (
            <button key={r} className={r === range ? "small active" : "small"} onClick={() => setRange(r)}>
              {r}
            </button>
          ))}
        </div>
        <ErrorNote error={stats.error} what="Statistics unavailable" />
        {stats.data && <StatsChart buckets={stats.data.buckets} bucketSeconds={stats.data.bucketSeconds} />}
      </Section>

      <Section title="Recent attempts">
        <RecentAttempts endpointId={endpointId} />
      </Section>

      <Section title="Settings">
        <EndpointForm
          key={ep.updatedAt?.seconds.toString()}
          initial={ep}
          submitLabel="Save changes"
          busy={update.isPending}
          onSubmit={(f) => {
            setSaved(false);
            update.mutate({
              endpointId,
              url: f.url,
              description: f.description,
              allowHttp: f.allowHttp,
              enabled: f.enabled,
              maxAttempts: f.maxAttempts,
              timeoutMs: f.timeoutMs,
              eventTypes: f.eventTypes,
              updateEventTypes: true,
              channels: f.channels,
              updateChannels: true,
            });
          }}
        />
        {saved && <p className="ok">Saved.</p>}
        <ErrorNote error={update.error} what="Could not save" />
      </Section>

      <Section title="Delete">
        <p>Deleting stops pending deliveries. Its events and their proofs stay.</p>
        <button
          className="danger"
          data-testid="delete-endpoint"
          disabled={remove.isPending}
          onClick={() => window.confirm(`Delete the endpoint ${ep.url}?`) && remove.mutate({ endpointId })}
        >
          Delete endpoint
        </button>
        <ErrorNote error={remove.error} what="Could not delete" />
      </Section>
    </div>
  );
}
