// API keys as a table with revoke buttons, and the form for a new key; shared by the tenant's own
// key page and the admin's tenant page.
import { useState, type FormEvent } from "react";
import { Scope, type ApiKey } from "@kapsel/sdk/web";
import { formatTime, SCOPE_LABEL } from "../api/format.ts";
import { Badge } from "../components/ui.tsx";

export function ApiKeyTable({ keys, onRevoke }: { keys: ApiKey[]; onRevoke: (id: string) => void }) {
  if (keys.length === 0) return <p className="muted">No keys.</p>;
  return (
    <table className="list" data-testid="api-key-table">
      <thead>
        <tr>
          <th>Name</th>
          <th>Prefix</th>
          <th>Scopes</th>
          <th>Created</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {keys.map((k) => (
          <tr key={k.id} data-testid="api-key-row" data-key-id={k.id}>
            <td>{k.name}</td>
            <td>
              <code>{k.prefix}…</code>
            </td>
            <td>{k.scopes.map((s) => SCOPE_LABEL[s]).join(", ")}</td>
            <td>{formatTime(k.createdAt)}</td>
            <td>
              {k.revokedAt ? (
                <Badge kind="muted">revoked {formatTime(k.revokedAt)}</Badge>
              ) : (
                <button className="small danger" data-testid="revoke-key" onClick={() => window.confirm(`Revoke the key ${k.name || k.prefix}? Calls with it fail at once.`) && onRevoke(k.id)}>
                  Revoke
                </button>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const SCOPES = [Scope.READ, Scope.MANAGE, Scope.INGEST];

export function NewKeyForm({ busy, onCreate }: { busy: boolean; onCreate: (name: string, scopes: Scope[]) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>([Scope.READ]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onCreate(name.trim(), scopes);
  };
  return (
    <form className="inline-form" onSubmit={submit} data-testid="new-key-form">
      <label>
        New key <input value={name} onChange={(e) => setName(e.target.value)} placeholder="name" data-testid="new-key-name" />
      </label>
      {SCOPES.map((s) => (
        <label key={s} className="check">
          <input
            type="checkbox"
            checked={scopes.includes(s)}
            onChange={(e) => setScopes(e.target.checked ? [...scopes, s] : scopes.filter((x) => x !== s))}
            data-testid={`new-key-scope-${SCOPE_LABEL[s]}`}
          />{" "}
          {SCOPE_LABEL[s]}
        </label>
      ))}
      <button type="submit" disabled={busy || scopes.length === 0} data-testid="new-key-submit">
        Create key
      </button>
    </form>
  );
}
