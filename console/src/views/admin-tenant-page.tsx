// Admin: one tenant — rename it, set its ingest rate limit, and manage its API keys.
import { useState, type FormEvent } from "react";
import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { ManagementService, type Tenant } from "@kapsel/sdk/web";
import { ErrorNote, Field, Loading, SecretOnce, Section } from "../components/ui.tsx";
import { ApiKeyTable, NewKeyForm } from "./api-key-table.tsx";

export function AdminTenantPage({ tenantId }: { tenantId: string }) {
  const query = useQuery(ManagementService.method.getTenant, { tenantId });
  if (query.isPending) return <Loading what="the tenant" />;
  const tenant = query.data?.tenant;
  if (query.error || !tenant) return <ErrorNote error={query.error} what="Could not load the tenant" />;
  return <TenantAdmin key={`${tenant.name}/${tenant.rateLimitPerSecond}/${tenant.rateLimitBurst}`} tenant={tenant} />;
}

function TenantAdmin({ tenant }: { tenant: Tenant }) {
  const queryClient = useQueryClient();
  const invalidate = () => void queryClient.invalidateQueries();
  const [name, setName] = useState(tenant.name);
  const [rate, setRate] = useState(String(tenant.rateLimitPerSecond));
  const [burst, setBurst] = useState(String(tenant.rateLimitBurst));
  const [secret, setSecret] = useState<string>();
  const update = useMutation(ManagementService.method.updateTenant, { onSuccess: invalidate });
  const keys = useQuery(ManagementService.method.listApiKeys, { tenantId: tenant.id, pageSize: 500 });
  const createKey = useMutation(ManagementService.method.createApiKey, { onSuccess: (res) => (setSecret(res.secret), invalidate()) });
  const revoke = useMutation(ManagementService.method.revokeApiKey, { onSuccess: invalidate });

  const save = (e: FormEvent) => {
    e.preventDefault();
    update.mutate({ tenantId: tenant.id, name: name.trim(), rateLimitPerSecond: Number(rate), rateLimitBurst: Number(burst) });
  };
  return (
    <div>
      <header className="page-head">
        <h1 data-testid="tenant-name">{tenant.name}</h1>
        <code>{tenant.id}</code>
      </header>
      <Section title="Settings">
        <form className="grid-form" onSubmit={save} data-testid="tenant-form">
          <Field label="Name">
            <input value={name} onChange={(e) => setName(e.target.value)} required data-testid="tenant-name-input" />
          </Field>
          <Field label="Ingest rate (events per second)">
            <input type="number" min={0.001} step="any" value={rate} onChange={(e) => setRate(e.target.value)} data-testid="tenant-rate" />
          </Field>
          <Field label="Burst (events)">
            <input type="number" min={1} value={burst} onChange={(e) => setBurst(e.target.value)} data-testid="tenant-burst" />
          </Field>
          <div>
            <button type="submit" disabled={update.isPending} data-testid="tenant-save">
              Save
            </button>
          </div>
        </form>
        {update.isSuccess && <p className="ok">Saved.</p>}
        <ErrorNote error={update.error} what="Could not save" />
      </Section>
      <Section title="API keys">
        {secret && <SecretOnce label={`New API key for ${tenant.name}`} secret={secret} onDone={() => setSecret(undefined)} />}
        <NewKeyForm busy={createKey.isPending} onCreate={(keyName, scopes) => createKey.mutate({ tenantId: tenant.id, name: keyName, scopes })} />
        <ErrorNote error={createKey.error} what="Could not create the key" />
        <ErrorNote error={revoke.error} what="Could not revoke" />
        <ErrorNote error={keys.error} what="Could not list keys" />
        {keys.isPending ? <Loading what="keys" /> : <ApiKeyTable keys={keys.data?.apiKeys ?? []} onRevoke={(id) => revoke.mutate({ apiKeyId: id })} />}
      </Section>
    </div>
  );
}
