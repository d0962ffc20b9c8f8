// Inbound sources: one URL per webhook sender (Stripe, GitHub, …), verified once and fanned out to
// the subscribed endpoints. The list shows the full URL to paste into the sender's settings.
import { useState } from "react";
import { useInfiniteQuery, useMutation } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { ManagementService } from "@kapsel/sdk/web";
import { serverOrigin } from "../api/clients.ts";
import { isUnimplemented } from "../api/errors.ts";
import { SCHEME_LABEL, TYPE_FROM_LABEL } from "../api/format.ts";
import { Copyable, ErrorNote, Loading, SecretOnce } from "../components/ui.tsx";
import { Link } from "../router/router.tsx";
import { SourceForm } from "./source-form.tsx";

export function SourcesPage() {
  const list = useInfiniteQuery(ManagementService.method.listSources, { pageSize: 100, pageToken: "" }, {
    pageParamKey: "pageToken",
    getNextPageParam: (last) => last.nextPageToken || undefined,
  });
  const queryClient = useQueryClient();
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ name: string; secret: string }>();
  const create = useMutation(ManagementService.method.createSource, {
    onSuccess: (res) => {
      if (res.secret) setSecret({ name: res.source?.name ?? "", secret: res.secret });
      setCreating(false);
      void queryClient.invalidateQueries();
    },
  });
  const sources = list.data?.pages.flatMap((p) => p.sources) ?? [];
  if (isUnimplemented(list.error)) return <p className="muted">This server does not support inbound sources yet.</p>;

  return (
    <div>
      <header className="page-head">
        <h1>Sources</h1>
        <button onClick={() => setCreating((c) => !c)} data-testid="new-source">
          {creating ? "Cancel" : "New source"}
        </button>
      </header>
      <p className="muted">
        A source is the URL you give a webhook sender such as Stripe or GitHub. Kapsel checks the sender's signature once and
        delivers the message to every endpoint subscribed to its type.
      </p>
      {secret && <SecretOnce label={`Verification secret of source ${secret.name}`} secret={secret.secret} onDone={() => setSecret(undefined)} />}
      {creating && (
        <>
          <SourceForm submitLabel="Create source" busy={create.isPending} onSubmit={(f) => create.mutate(f)} />
          <ErrorNote error={create.error} what="Could not create the source" />
        </>
      )}
      <ErrorNote error={list.error} what="Could not list sources" />
      {list.isPending ? (
        <Loading what="sources" />
      ) : sources.length === 0 ? (
        <p className="muted">No sources yet.</p>
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th>Name</th>
              <th>URL to give the sender</th>
              <th>Signature</th>
              <th>Type from</th>
            </tr>
          </thead>
          <tbody>
            {sources.map((s) => (
              <tr key={s.id} data-testid="source-row" data-source-id={s.id}>
                <td>
                  <Link to={`/console/sources/${s.id}`}>{s.name}</Link>
                </td>
                <td>
                  <Copyable text={`${serverOrigin()}${s.ingestPath}`} testId="source-url" />
                </td>
                <td>{SCHEME_LABEL[s.scheme]}</td>
                <td>{TYPE_FROM_LABEL[s.eventTypeFrom]}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
