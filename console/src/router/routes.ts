// Every client-side route of the console. The server answers each of them with index.html so a
// link can be opened directly (server/src/http/console-route.ts keeps the same list; a server test
// checks the two agree). `:name` is a UUID path parameter.
export const ROUTES = [
  "/console/",
  "/console/sign-in",
  "/console/events",
  "/console/events/:eventId",
  "/console/messages",
  "/console/messages/:messageId",
  "/console/endpoints",
  "/console/endpoints/:endpointId",
  "/console/sources",
  "/console/sources/:sourceId",
  "/console/alerts",
  "/console/keys",
  "/console/log",
  "/console/admin",
  "/console/admin/tenants/:tenantId",
] as const;

export type RoutePattern = (typeof ROUTES)[number];

export interface Match {
  pattern: RoutePattern;
  params: Record<string, string>;
}

/** The route a path shows, or undefined for an unknown path. */
export function matchRoute(pathname: string): Match | undefined {
  const path = pathname === "/console" ? "/console/" : pathname;
  for (const pattern of ROUTES) {
    const names: string[] = [];
    const source = pattern.replace(/:([a-zA-Z]+)/g, (_m, name: string) => {
      names.push(name);
      return "([0-9a-fA-F-]{36})";
    });
    const m = new RegExp(`^${source}$`).exec(path);
    if (m) return { pattern, params: Object.fromEntries(names.map((n, i) => [n, m[i + 1]!])) };
  }
  return undefined;
}
