// Messages: what was sent once, before fan-out, newest first, filtered by type (`kapsel.*` shows
// Kapsel's own operational events), source, channel and time range.
import { useInfiniteQuery } from "@connectrpc/connect-query";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ManagementService } from "@kapsel/sdk/web";
import { isUnimplemented } from "../api/errors.ts";
import { formatBytes, formatTime, fromLocalInput } from "../api/format.ts";
import { ErrorNote, Loading } from "../components/ui.tsx";
import { Link, setSearch, useLocation } from "../router/router.tsx";

export function MessagesPage() {
  const { search } = useLocation();
  const filters = {
    type: search.get("type") ?? "",
    source: search.get("source") ?? "",
    channel: search.get("channel") ?? "",
    from: search.get("from") ?? "",
    to: search.get("to") ?? "",
  };
  const from = fromLocalInput(filters.from);
  const to = fromLocalInput(filters.to);
  const list = useInfiniteQuery(
    ManagementService.method.listMessages,
    {
      eventType: filters.type,
      sourceId: filters.source,
      channel: filters.channel,
      receivedAfter: from ? timestampFromDate(from) : undefined,
      receivedBefore: to ? timestampFromDate(to) : undefined,
      pageSize: 100,
      pageToken: "",
    },
    { pageParamKey: "pageToken", getNextPageParam: (last) => last.nextPageToken || undefined },
  );
  const set = (patch: Partial<typeof filters>) => setSearch({ ...filters, ...patch });
  const messages = list.data?.pages.flatMap((p) => p.messages) ?? [];
  if (isUnimplemented(list.error)) return <p className="muted">This server does not list messages yet.</p>;
  const text = (key: "type" | "channel", placeholder: string) => (
    <input
      defaultValue={filters[key]}
      placeholder={placeholder}
      onBlur={(e) => e.target.value !== filters[key] && set({ [key]: e.target.value.trim() })}
      onKeyDown={(e) => e.key === "Enter" && set({ [key]: e.currentTarget.value.trim() })}
      data-testid={`message-filter-${key}`}
    />
  );
  return (
    <div>
      <header className="page-head">
        <h1>Messages</h1>
      </header>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>Type {text("type", "invoice.* or kapsel.*")}</label>
        <label>Channel {text("channel", "any")}</label>
        <label>
          From <input type="datetime-local" value={filters.from} onChange={(e) => set({ from: e.target.value })} />
        </label>
        <label>
          To <input type="datetime-local" value={filters.to} onChange={(e) => set({ to: e.target.value })} />
        </label>
        {filters.source && (
          <button type="button" className="small" onClick={() => set({ source: "" })}>
            Any source
          </button>
        )}
      </form>
      <ErrorNote error={list.error} what="Could not list messages" />
      {list.isPending ? (
        <Loading what="messages" />
      ) : messages.length === 0 ? (
        <p className="muted">No messages match.</p>
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th>Received</th>
              <th>Type</th>
              <th>Channels</th>
              <th>Endpoints</th>
              <th>Size</th>
              <th>Message</th>
            </tr>
          </thead>
          <tbody>
            {messages.map((m) => (
              <tr key={m.id} data-testid="message-row" data-message-id={m.id}>
                <td>{formatTime(m.receivedAt)}</td>
                <td>{m.eventType || <span className="muted">—</span>}</td>
                <td>{m.channels.join(", ")}</td>
                <td>{m.eventCount}</td>
                <td>{formatBytes(m.payloadSize)}</td>
                <td>
                  <Link to={`/console/messages/${m.id}`}>
                    <code>{m.id.slice(0, 8)}…</code>
                  </Link>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {list.hasNextPage && <button onClick={() => void list.fetchNextPage()}>Load older messages</button>}
    </div>
  );
}
