// One source: its URL, verification settings (editable), secret rotation and deletion, and the
// messages that came in through it.
import { useState } from "react";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { ManagementService, SourceScheme } from "@kapsel/sdk/web";
import { serverOrigin } from "../api/clients.ts";
import { formatTime, SCHEME_LABEL } from "../api/format.ts";
import { Copyable, ErrorNote, Loading, SecretOnce, Section } from "../components/ui.tsx";
import { Link, navigate } from "../router/router.tsx";
import { SourceForm } from "./source-form.tsx";

export function SourcePage({ sourceId }: { sourceId: string }) {
  const queryClient = useQueryClient();
  const query = useQuery(ManagementService.method.getSource, { sourceId });
  const [secret, setSecret] = useState<string>();
  const [saved, setSaved] = useState(false);
  const invalidate = () => void queryClient.invalidateQueries();
  const update = useMutation(ManagementService.method.updateSource, { onSuccess: () => (setSaved(true), invalidate()) });
  const rotate = useMutation(ManagementService.method.rotateSourceSecret, { onSuccess: (res) => (setSecret(res.secret), invalidate()) });
  const remove = useMutation(ManagementService.method.deleteSource, { onSuccess: () => (invalidate(), navigate("/console/sources")) });

  if (query.isPending) return <Loading what="the source" />;
  const s = query.data?.source;
  if (query.error || !s) return <ErrorNote error={query.error} what="Could not load the source" />;
  return (
    <div>
      <header className="page-head">
        <h1>{s.name}</h1>
        <Link to={`/console/messages?source=${s.id}`}>Its messages</Link>
      </header>
      <dl className="facts">
        <dt>URL to give the sender</dt>
        <dd>
          <Copyable text={`${serverOrigin()}${s.ingestPath}`} testId="source-url" />
        </dd>
        <dt>Signature check</dt>
        <dd>{SCHEME_LABEL[s.scheme]}</dd>
        <dt>Secret</dt>
        <dd>
          {s.scheme === SourceScheme.NONE ? "none" : `set ${formatTime(s.secretRotatedAt)}`}{" "}
          <button
            className="small"
            onClick={() => window.confirm("Generate a new verification secret? The current one keeps verifying for 24 hours.") && rotate.mutate({ sourceId })}
          >
            Rotate
          </button>
        </dd>
        <dt>Created</dt>
        <dd>{formatTime(s.createdAt)}</dd>
      </dl>
      {secret && <SecretOnce label="New verification secret (the previous one verifies for 24 more hours)" secret={secret} onDone={() => setSecret(undefined)} />}
      <ErrorNote error={rotate.error} what="Rotation failed" />
      <Section title="Settings">
        <SourceForm
          key={s.updatedAt?.seconds.toString()}
          initial={s}
          submitLabel="Save changes"
          busy={update.isPending}
          onSubmit={(f) => {
            setSaved(false);
            update.mutate({
              sourceId,
              name: f.name,
              scheme: f.scheme,
              header: f.header,
              toleranceSeconds: f.toleranceSeconds,
              eventTypeFrom: f.eventTypeFrom,
              eventTypeHeader: f.eventTypeHeader,
              eventTypePointer: f.eventTypePointer,
              channels: f.channels,
              updateChannels: true,
            });
          }}
        />
        {saved && <p className="ok">Saved.</p>}
        <ErrorNote error={update.error} what="Could not save" />
      </Section>
      <Section title="Delete">
        <button className="danger" onClick={() => window.confirm(`Delete the source ${s.name}? Its URL stops accepting webhooks.`) && remove.mutate({ sourceId })}>
          Delete source
        </button>
        <ErrorNote error={remove.error} what="Could not delete" />
      </Section>
    </div>
  );
}
