// Sign-in with a tenant API key (`ksk_…`) or the server's admin token. The credential is checked
// with one call before it is kept, so a wrong key gets a clear message here rather than errors on
// every page.
import { useState, type FormEvent } from "react";
import { Code } from "@kapsel/sdk/web";
import { createClients } from "../api/clients.ts";
import { asKapselError, describeError } from "../api/errors.ts";
import type { Credential } from "./credential.ts";

async function check(token: string): Promise<Credential> {
  const { client } = createClients(token);
  if (token.startsWith("ksk_")) {
    const { tenant } = await client.management.getTenant({});
    return { kind: "tenant", token, tenantName: tenant?.name ?? "" };
  }
  await client.management.listTenants({ pageSize: 1 });
  return { kind: "admin", token };
}

function explain(err: unknown, token: string): string {
  const e = asKapselError(err);
  if (e.code === Code.Unauthenticated) {
    return token.startsWith("ksk_")
      ? "This API key was not accepted (E1004): it is mistyped, revoked, or belongs to another Kapsel server."
      : "Not accepted (E1004): this is neither a tenant API key (ksk_…) nor this server's admin token.";
  }
  if (e.code === Code.PermissionDenied) {
    return "This API key may not read this tenant (E1004): the console needs a key with the read or manage scope, not only ingest.";
  }
  return `Could not sign in: ${describeError(err)}`;
}

export function SignIn({ onSignedIn }: { onSignedIn: (c: Credential) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const value = token.trim();
    if (!value) {
      setError("Enter a tenant API key (ksk_…) or the admin token.");
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      onSignedIn(await check(value));
    } catch (err) {
      setError(explain(err, value));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="sign-in">
      <h1>Kapsel Console</h1>
      <p>Every delivery of your webhooks, and a proof of each one you can check in this browser.</p>
      <form onSubmit={(e) => void submit(e)}>
        <label htmlFor="api-key">API key or admin token</label>
        <input
          id="api-key"
          data-testid="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="ksk_…"
          value={token}
          onChange={(e) => setToken(e.target.value)}
        />
        <button type="submit" data-testid="sign-in" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        {error && (
          <p className="error" role="alert" data-testid="sign-in-error">
            {error}
          </p>
        )}
      </form>
      <p className="fine">
        The key is kept in this tab only (sessionStorage) and sent only to {window.location.host}, the server that served
        this page.
      </p>
    </main>
  );
}
