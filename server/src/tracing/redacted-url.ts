// A delivery URL as it may appear in a span: endpoint URLs often carry credentials (a token in the
// query, user:password in the authority), and spans go to a collector that is not ours to guard.
// The semantic conventions ask for user info to be replaced by REDACTED; we redact every query
// value too, keeping the parameter names so that the URL stays recognisable.

/** Words, not tokens: no digits, so a random-looking string is never kept. */
const PLAIN_NAME = /^[A-Za-z_][A-Za-z_.-]{0,31}$/;

/** The URL with user info and query values replaced by REDACTED, the fragment dropped; undefined
 * when it does not parse. */
export function redactedUrl(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const auth = u.username !== "" || u.password !== "" ? "REDACTED:REDACTED@" : "";
  let query = "";
  if (u.search !== "") {
    // A name that is not a short plain word could be a secret itself (`?s3cr3t-t0ken`).
    const names = u.search.slice(1).split("&").map((pair) => pair.split("=")[0]!);
    query = `?${names.map((n) => (PLAIN_NAME.test(n) ? `${n}=REDACTED` : "REDACTED")).join("&")}`;
  }
  return `${u.protocol}//${auth}${u.host}${u.pathname}${query}`;
}
