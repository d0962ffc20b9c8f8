// The credential the console signs in with: a tenant API key or the admin token. It lives in
// sessionStorage only (gone when the tab closes, never shared with other tabs or written to disk
// by us), and it is only ever sent to the origin that served this page (see api/clients.ts).

export type Credential = { kind: "tenant"; token: string; tenantName: string } | { kind: "admin"; token: string };

const KEY = "kapsel.console.credential";

export function loadCredential(): Credential | undefined {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return undefined;
    const value = JSON.parse(raw) as Credential;
    if (typeof value.token !== "string" || (value.kind !== "tenant" && value.kind !== "admin")) return undefined;
    return value;
  } catch {
    return undefined;
  }
}

export function saveCredential(credential: Credential): void {
  sessionStorage.setItem(KEY, JSON.stringify(credential));
}

export function clearCredential(): void {
  sessionStorage.removeItem(KEY);
}
