// `Authorization: Bearer <token>`: the one way every credential is presented (API keys, the admin
// token, the metrics token).

/** The token of a bearer Authorization header; undefined when absent or another scheme. */
export function bearerToken(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
