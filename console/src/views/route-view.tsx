// Which view the current route shows. Tenant views need a tenant API key; the admin token sees
// the tenant administration and the log.
import { useRoute } from "../router/router.tsx";
import type { Credential } from "../session/credential.ts";
import { AdminTenantPage } from "./admin-tenant-page.tsx";
import { AdminTenantsPage } from "./admin-tenants-page.tsx";
import { AlertsPage } from "./alerts-page.tsx";
import { EndpointPage } from "./endpoint-page.tsx";
import { EndpointsPage } from "./endpoints-page.tsx";
import { EventPage } from "./event-page.tsx";
import { EventsPage } from "./events-page.tsx";
import { KeysPage } from "./keys-page.tsx";
import { LogPage } from "./log-page.tsx";
import { MessagePage } from "./message-page.tsx";
import { MessagesPage } from "./messages-page.tsx";
import { SourcePage } from "./source-page.tsx";
import { SourcesPage } from "./sources-page.tsx";

export function RouteView({ credential }: { credential: Credential }) {
  const route = useRoute();
  if (!route) return <p className="error">There is no page at this address.</p>;
  const p = route.params;
  const admin = credential.kind === "admin";
  const tenantOnly = (view: React.ReactNode) =>
    admin ? <p className="muted">This page shows one tenant's data: sign in with that tenant's API key.</p> : view;
  switch (route.pattern) {
    case "/console/":
    case "/console/sign-in":
      return null;
    case "/console/events":
      return tenantOnly(<EventsPage />);
    case "/console/events/:eventId":
      return tenantOnly(<EventPage eventId={p.eventId!} />);
    case "/console/messages":
      return tenantOnly(<MessagesPage />);
    case "/console/messages/:messageId":
      return tenantOnly(<MessagePage messageId={p.messageId!} />);
    case "/console/endpoints":
      return tenantOnly(<EndpointsPage />);
    case "/console/endpoints/:endpointId":
      return tenantOnly(<EndpointPage endpointId={p.endpointId!} />);
    case "/console/sources":
      return tenantOnly(<SourcesPage />);
    case "/console/sources/:sourceId":
      return tenantOnly(<SourcePage sourceId={p.sourceId!} />);
    case "/console/alerts":
      return tenantOnly(<AlertsPage />);
    case "/console/keys":
      return tenantOnly(<KeysPage />);
    case "/console/log":
      return <LogPage />;
    case "/console/admin":
      return admin ? <AdminTenantsPage /> : <p className="muted">Tenant administration needs the admin token.</p>;
    case "/console/admin/tenants/:tenantId":
      return admin ? <AdminTenantPage tenantId={p.tenantId!} /> : <p className="muted">Tenant administration needs the admin token.</p>;
  }
}
