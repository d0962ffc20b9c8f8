// The tenant's own API keys: list, create (secret shown once), revoke.
import { useState } from "react";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { ManagementService } from "@kapsel/sdk/web";
import { ApiKeyTable, NewKeyForm } from "./api-key-table.tsx";
import { ErrorNote, Loading, SecretOnce } from "../components/ui.tsx";

export function KeysPage() {
  const queryClient = useQueryClient();
  const keys = useQuery(ManagementService.method.listApiKeys, { pageSize: 500 });
  const [secret, setSecret] = useState<string>();
  const create = useMutation(ManagementService.method.createApiKey, {
    onSuccess: (res) => (setSecret(res.secret), void queryClient.invalidateQueries()),
  });
  const revoke = useMutation(ManagementService.method.revokeApiKey, { onSuccess: () => void queryClient.invalidateQueries() });
  return (
    <div>
      <header className="page-head">
        <h1>API keys</h1>
      </header>
      {secret && <SecretOnce label="New API key" secret={secret} onDone={() => setSecret(undefined)} />}
      <NewKeyForm busy={create.isPending} onCreate={(name, scopes) => create.mutate({ name, scopes })} />
      <ErrorNote error={create.error} what="Could not create the key" />
      <ErrorNote error={keys.error} what="Could not list keys" />
      <ErrorNote error={revoke.error} what="Could not revoke" />
      {keys.isPending ? <Loading what="keys" /> : <ApiKeyTable keys={keys.data?.apiKeys ?? []} onRevoke={(id) => revoke.mutate({ apiKeyId: id })} />}
    </div>
  );
}
