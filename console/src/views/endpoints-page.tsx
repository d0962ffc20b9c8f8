// The tenant's endpoints, and a form to add one (its signing secret is shown once).
import { useState } from "react";
import { useInfiniteQuery, useMutation } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { ManagementService } from "@kapsel/sdk/web";
import { formatTime } from "../api/format.ts";
import { Badge, ErrorNote, Loading, SecretOnce } from "../components/ui.tsx";
import { Link } from "../router/router.tsx";
import { EndpointForm } from "./endpoint-form.tsx";

export function EndpointsPage() {
  const list = useInfiniteQuery(ManagementService.method.listEndpoints, { pageSize: 100, pageToken: "" }, {
    pageParamKey: "pageToken",
    getNextPageParam: (last) => last.nextPageToken || undefined,
  });
  const queryClient = useQueryClient();
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ id: string; secret: string }>();
  const create = useMutation(ManagementService.method.createEndpoint, {
    onSuccess: (res) => {
      setSecret({ id: res.endpoint!.id, secret: res.signingSecret });
      setCreating(false);
      void queryClient.invalidateQueries();
    },
  });
  const endpoints = list.data?.pages.flatMap((p) => p.endpoints) ?? [];

  return (
    <div>
      <header className="page-head">
        <h1>Endpoints</h1>
        <button onClick={() => setCreating((c) => !c)} data-testid="new-endpoint">
          {creating ? "Cancel" : "New endpoint"}
        </button>
      </header>
      {secret && (
        <SecretOnce label={`Signing secret of endpoint ${secret.id}`} secret={secret.secret} onDone={() => setSecret(undefined)} />
      )}
      {creating && (
        <>
          <EndpointForm
            submitLabel="Create endpoint"
            busy={create.isPending}
            onSubmit={(f) =>
              create.mutate({
                url: f.url,
                description: f.description,
                allowHttp: f.allowHttp,
                eventTypes: f.eventTypes,
                channels: f.channels,
                maxAttempts: f.maxAttempts,
                timeoutMs: f.timeoutMs,
                disabled: !f.enabled,
              })
            }
          />
          <ErrorNote error={create.error} what="Could not create the endpoint" />
        </>
      )}
      <ErrorNote error={list.error} what="Could not list endpoints" />
      {list.isPending ? (
        <Loading what="endpoints" />
      ) : endpoints.length === 0 ? (
        <p className="muted">No endpoints yet. Add the URL where your webhooks should be delivered.</p>
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th>URL</th>
              <th>Description</th>
              <th>Types</th>
              <th>Channels</th>
              <th>State</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {endpoints.map((ep) => (
              <tr key={ep.id} data-testid="endpoint-row" data-endpoint-id={ep.id}>
                <td className="truncate">
                  <Link to={`/console/endpoints/${ep.id}`}>{ep.url}</Link>
                </td>
                <td>{ep.description}</td>
                <td>{ep.eventTypes.length ? ep.eventTypes.join(", ") : <span className="muted">all</span>}</td>
                <td>{ep.channels.length ? ep.channels.join(", ") : <span className="muted">—</span>}</td>
                <td>
                  {ep.enabled ? <Badge kind="ok">enabled</Badge> : <Badge kind="bad">disabled{ep.disabledReason ? `: ${ep.disabledReason}` : ""}</Badge>}
                </td>
                <td>{formatTime(ep.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {list.hasNextPage && <button onClick={() => void list.fetchNextPage()}>More endpoints</button>}
    </div>
  );
}
