// The console's shell: sign-in, then the data layer (connect-query over the SDK's transport,
// TanStack Query), the trust state of the log, the navigation, and the view of the current route.
import { useEffect, useMemo, useState } from "react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { TransportProvider } from "@connectrpc/connect-query";
import { Code, ConnectError } from "@kapsel/sdk/web";
import { createClients, type Clients } from "./api/clients.ts";
import { ClientsContext } from "./api/use-clients.ts";
import { ForkAlarmBanner } from "./proof/fork-alarm.tsx";
import { KeyWarning } from "./proof/key-warning.tsx";
import { TrustProvider } from "./proof/trust-context.tsx";
import { Link, navigate, RouterProvider, useLocation, useRoute } from "./router/router.tsx";
import { clearCredential, loadCredential, saveCredential, type Credential } from "./session/credential.ts";
import { SignIn } from "./session/sign-in.tsx";
import { LogStatus } from "./views/log-status.tsx";
import { RouteView } from "./views/route-view.tsx";

function makeQueryClient(onUnauthenticated: () => void): QueryClient {
  const client = new QueryClient({
    defaultOptions: {
      queries: {
        refetchOnWindowFocus: false,
        staleTime: 5_000,
        // Errors the server meant (bad input, not found, no permission) are not worth repeating.
        retry: (count, err) => count < 2 && err instanceof ConnectError && [Code.Unavailable, Code.Unknown].includes(err.code),
      },
    },
  });
  client.getQueryCache().subscribe((e) => {
    if (e.type === "updated" && e.action.type === "error" && e.action.error instanceof ConnectError && e.action.error.code === Code.Unauthenticated) {
      onUnauthenticated();
    }
  });
  return client;
}

export function App() {
  const [credential, setCredential] = useState<Credential | undefined>(loadCredential);
  const [expired, setExpired] = useState(false);
  const signOut = () => {
    clearCredential();
    setCredential(undefined);
  };
  return (
    <RouterProvider>
      {credential ? (
        <SignedIn key={credential.token} credential={credential} onSignOut={signOut} onExpired={() => {
          setExpired(true);
          signOut();
        }} />
      ) : (
        <>
          {expired && <p className="error banner">The server no longer accepts that key (revoked?). Sign in again.</p>}
          <SignIn
            onSignedIn={(c) => {
              saveCredential(c);
              setExpired(false);
              setCredential(c);
            }}
          />
        </>
      )}
    </RouterProvider>
  );
}

function SignedIn({ credential, onSignOut, onExpired }: { credential: Credential; onSignOut: () => void; onExpired: () => void }) {
  const clients: Clients = useMemo(() => createClients(credential.token), [credential.token]);
  const [queryClient] = useState(() => makeQueryClient(onExpired));
  return (
    <ClientsContext.Provider value={{ ...clients, credential }}>
      <TransportProvider transport={clients.transport}>
        <QueryClientProvider client={queryClient}>
          <TrustProvider client={clients.client}>
            <Shell credential={credential} onSignOut={onSignOut} />
          </TrustProvider>
        </QueryClientProvider>
      </TransportProvider>
    </ClientsContext.Provider>
  );
}

const TENANT_NAV = [
  ["/console/events", "Events"],
  ["/console/messages", "Messages"],
  ["/console/endpoints", "Endpoints"],
  ["/console/sources", "Sources"],
  ["/console/alerts", "Alerts"],
  ["/console/keys", "API keys"],
  ["/console/log", "Log & proofs"],
] as const;
const ADMIN_NAV = [
  ["/console/admin", "Tenants"],
  ["/console/log", "Log & proofs"],
] as const;

function Shell({ credential, onSignOut }: { credential: Credential; onSignOut: () => void }) {
  const route = useRoute();
  const { pathname } = useLocation();
  useEffect(() => {
    if (route?.pattern === "/console/" || route?.pattern === "/console/sign-in") {
      navigate(credential.kind === "admin" ? "/console/admin" : "/console/events", { replace: true });
    }
  }, [route?.pattern, credential.kind]);
  const nav = credential.kind === "admin" ? ADMIN_NAV : TENANT_NAV;
  return (
    <div className="shell">
      <header className="top">
        <Link to="/console/" className="brand">
          Kapsel
        </Link>
        <nav>
          {nav.map(([to, label]) => (
            <Link key={to} to={to} className={pathname.startsWith(to) ? "active" : undefined}>
              {label}
            </Link>
          ))}
        </nav>
        <LogStatus />
        <span className="who" data-testid="signed-in-as">
          {credential.kind === "admin" ? "admin" : credential.tenantName}
        </span>
        <button className="small" onClick={onSignOut} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <ForkAlarmBanner />
      <KeyWarning />
      <main>
        <RouteView credential={credential} />
      </main>
    </div>
  );
}
