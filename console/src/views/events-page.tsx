// The event timeline: newest first, filtered by status, type, endpoint and time range (kept in
// the URL so a filtered view can be linked), updated live by WatchEvents, with "load more" and
// bulk recovery of failed events in a time window.
import { useCallback, useMemo, useState } from "react";
import { useInfiniteQuery } from "@connectrpc/connect-query";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useQueryClient } from "@tanstack/react-query";
import { EventStatus, ManagementService, type Event } from "@kapsel/sdk/web";
import { formatTime, fromLocalInput, matchesType, STATUS_LABEL } from "../api/format.ts";
import { useWatchEvents } from "../api/use-watch-events.ts";
import { ErrorNote, Loading, StatusBadge } from "../components/ui.tsx";
import { Link, setSearch, useLocation } from "../router/router.tsx";
import { RecoverForm } from "./recover-form.tsx";
import { useEndpointIndex } from "./use-endpoints.ts";

const STATUS_BY_NAME: Record<string, EventStatus> = {
  pending: EventStatus.PENDING,
  delivering: EventStatus.DELIVERING,
  delivered: EventStatus.DELIVERED,
  failed: EventStatus.FAILED,
};

const LIVE_LABEL = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  unavailable: "live updates unavailable on this server",
  busy: "too many live views open for this tenant; retrying",
};

export function EventsPage() {
  const { search } = useLocation();
  const filters = {
    status: search.get("status") ?? "",
    type: search.get("type") ?? "",
    endpoint: search.get("endpoint") ?? "",
    from: search.get("from") ?? "",
    to: search.get("to") ?? "",
  };
  const from = fromLocalInput(filters.from);
  const to = fromLocalInput(filters.to);
  const input = {
    status: STATUS_BY_NAME[filters.status] ?? EventStatus.UNSPECIFIED,
    eventType: filters.type,
    endpointId: filters.endpoint,
    receivedAfter: from ? timestampFromDate(from) : undefined,
    receivedBefore: to ? timestampFromDate(to) : undefined,
    pageSize: 100,
    pageToken: "",
  };
  const list = useInfiniteQuery(ManagementService.method.listEvents, input, {
    pageParamKey: "pageToken",
    getNextPageParam: (last) => last.nextPageToken || undefined,
  });
  const { byId: endpoints, endpoints: endpointList } = useEndpointIndex();
  const queryClient = useQueryClient();

  // Events the stream reported, by id: they override what the list fetched.
  const [live, setLive] = useState<Map<string, Event>>(() => new Map());
  const onEvents = useCallback((events: Event[]) => {
    setLive((prev) => {
      const next = new Map(prev);
      for (const e of events) next.set(e.id, e);
      return next;
    });
  }, []);
  const onEstablished = useCallback(() => {
    void queryClient.invalidateQueries({ queryKey: ["connect-query", { serviceName: ManagementService.typeName, methodName: "ListEvents" }] });
  }, [queryClient]);
  const liveState = useWatchEvents({ endpointId: filters.endpoint, eventType: filters.type }, onEvents, onEstablished);

  const rows = useMemo(() => {
    const merged = new Map<string, Event>();
    for (const page of list.data?.pages ?? []) for (const e of page.events) merged.set(e.id, live.get(e.id) ?? e);
    // Live events are kept across filter changes, so each is checked against the current filters.
    const matches = (e: Event) => {
      if (input.status !== EventStatus.UNSPECIFIED && e.status !== input.status) return false;
      if (filters.endpoint && e.endpointId !== filters.endpoint) return false;
      if (!matchesType(filters.type, e.eventType)) return false;
      const at = e.receivedAt ? timestampDate(e.receivedAt).getTime() : 0;
      if (from && at < from.getTime()) return false;
      if (to && at >= to.getTime()) return false;
      return true;
    };
    for (const e of live.values()) if (!merged.has(e.id) && matches(e)) merged.set(e.id, e);
    return [...merged.values()]
      .filter((e) => input.status === EventStatus.UNSPECIFIED || e.status === input.status || !live.has(e.id))
      .sort((a, b) => {
        const d = Number((b.receivedAt?.seconds ?? 0n) - (a.receivedAt?.seconds ?? 0n)) || (b.receivedAt?.nanos ?? 0) - (a.receivedAt?.nanos ?? 0);
        return d !== 0 ? d : b.id.localeCompare(a.id);
      });
  }, [list.data, live, input.status, filters.endpoint, filters.type, from?.getTime(), to?.getTime()]);

  const set = (patch: Partial<typeof filters>) => setSearch({ ...filters, ...patch });

  return (
    <div className="events-page">
      <header className="page-head">
        <h1>Events</h1>
        <span className={`live ${liveState}`} data-testid="live-status" data-state={liveState}>
          {LIVE_LABEL[liveState]}
        </span>
      </header>
      <form className="filters" onSubmit={(e) => e.preventDefault()} data-testid="event-filters">
        <label>
          Status
          <select value={filters.status} onChange={(e) => set({ status: e.target.value })} data-testid="filter-status">
            <option value="">any</option>
            {Object.keys(STATUS_BY_NAME).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Type
          <input
            defaultValue={filters.type}
            placeholder="invoice.* or invoice.paid"
            onBlur={(e) => e.target.value !== filters.type && set({ type: e.target.value.trim() })}
            onKeyDown={(e) => e.key === "Enter" && set({ type: e.currentTarget.value.trim() })}
            data-testid="filter-type"
          />
        </label>
        <label>
          Endpoint
          <select value={filters.endpoint} onChange={(e) => set({ endpoint: e.target.value })} data-testid="filter-endpoint">
            <option value="">any</option>
            {endpointList.map((ep) => (
              <option key={ep.id} value={ep.id}>
                {ep.description || ep.url}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" value={filters.from} onChange={(e) => set({ from: e.target.value })} data-testid="filter-from" />
        </label>
        <label>
          To
          <input type="datetime-local" value={filters.to} onChange={(e) => set({ to: e.target.value })} data-testid="filter-to" />
        </label>
        {Object.values(filters).some(Boolean) && (
          <button type="button" className="small" onClick={() => set({ status: "", type: "", endpoint: "", from: "", to: "" })}>
            Clear filters
          </button>
        )}
      </form>
      <ErrorNote error={list.error} what="Could not list events" />
      {list.isPending ? (
        <Loading what="events" />
      ) : (
        <table className="list" data-testid="event-table">
          <thead>
            <tr>
              <th>Received</th>
              <th>Status</th>
              <th>Type</th>
              <th>Endpoint</th>
              <th>Attempts</th>
              <th>Event</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.id} data-testid="event-row" data-event-id={e.id} data-status={STATUS_LABEL[e.status]}>
                <td>{formatTime(e.receivedAt)}</td>
                <td>
                  <StatusBadge status={e.status} />
                </td>
                <td>{e.eventType || <span className="muted">—</span>}</td>
                <td className="truncate">
                  <Link to={`/console/endpoints/${e.endpointId}`}>{endpoints.get(e.endpointId)?.description || endpoints.get(e.endpointId)?.url || e.endpointId.slice(0, 8)}</Link>
                </td>
                <td>{e.attemptCount}</td>
                <td>
                  <Link to={`/console/events/${e.id}`} data-testid="event-link">
                    <code>{e.id.slice(0, 8)}…</code>
                  </Link>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {!list.isPending && rows.length === 0 && <p className="muted">No events match.</p>}
      {list.hasNextPage && (
        <button onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage} data-testid="load-more">
          {list.isFetchingNextPage ? "Loading…" : "Load older events"}
        </button>
      )}
      <RecoverForm endpoints={endpointList} defaultEndpoint={filters.endpoint} defaultType={filters.type} />
    </div>
  );
}
