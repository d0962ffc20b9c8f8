// Admin: every tenant, and a form to create one (its first API key is shown once).
import { useState, type FormEvent } from "react";
import { useInfiniteQuery, useMutation } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { ManagementService } from "@kapsel/sdk/web";
import { formatTime } from "../api/format.ts";
import { ErrorNote, Loading, SecretOnce } from "../components/ui.tsx";
import { Link } from "../router/router.tsx";

export function AdminTenantsPage() {
  const queryClient = useQueryClient();
  const list = useInfiniteQuery(ManagementService.method.listTenants, { pageSize: 100, pageToken: "" }, {
    pageParamKey: "pageToken",
    getNextPageParam: (last) => last.nextPageToken || undefined,
  });
  const [name, setName] = useState("");
  const [created, setCreated] = useState<{ name: string; key: string }>();
  const create = useMutation(ManagementService.method.createTenant, {
    onSuccess: (res) => {
      setCreated({ name: res.tenant?.name ?? "", key: res.apiKey });
      setName("");
      void queryClient.invalidateQueries();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name: name.trim() });
  };
  const tenants = list.data?.pages.flatMap((p) => p.tenants) ?? [];
  return (
    <div>
      <header className="page-head">
        <h1>Tenants</h1>
      </header>
      <form className="inline-form" onSubmit={submit} data-testid="new-tenant-form">
        <label>
          New tenant <input value={name} onChange={(e) => setName(e.target.value)} required placeholder="name" data-testid="new-tenant-name" />
        </label>
        <button type="submit" disabled={create.isPending} data-testid="new-tenant-submit">
          Create tenant
        </button>
      </form>
      {created && <SecretOnce label={`First API key of ${created.name} (every scope)`} secret={created.key} onDone={() => setCreated(undefined)} />}
      <ErrorNote error={create.error} what="Could not create the tenant" />
      <ErrorNote error={list.error} what="Could not list tenants" />
      {list.isPending ? (
        <Loading what="tenants" />
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th>Name</th>
              <th>Rate limit</th>
              <th>Created</th>
              <th>Id</th>
            </tr>
          </thead>
          <tbody>
            {tenants.map((t) => (
              <tr key={t.id} data-testid="tenant-row" data-tenant-id={t.id}>
                <td>
                  <Link to={`/console/admin/tenants/${t.id}`}>{t.name}</Link>
                </td>
                <td>
                  {t.rateLimitPerSecond}/s, burst {t.rateLimitBurst}
                </td>
                <td>{formatTime(t.createdAt)}</td>
                <td>
                  <code>{t.id}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {list.hasNextPage && <button onClick={() => void list.fetchNextPage()}>More tenants</button>}
    </div>
  );
}
