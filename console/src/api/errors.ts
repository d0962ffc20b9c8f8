// Turns whatever a call threw into a sentence for people: what went wrong, in the console's
// words, then the server's code and message so a support request can quote them.
import { Code, ConnectError, KapselError } from "@kapsel/sdk/web";

export function asKapselError(err: unknown): KapselError {
  if (err instanceof KapselError) return err;
  return new KapselError(ConnectError.from(err));
}

/** A short explanation of a failed call. */
export function describeError(err: unknown): string {
  const e = asKapselError(err);
  const detail = serverMessage(e);
  switch (e.code) {
    case Code.Unauthenticated:
      return `The server did not accept this key (${e.kapselCode ?? "E1004"}): it is wrong, revoked, or not for this server.`;
    case Code.PermissionDenied:
      return `This key may not do that (${e.kapselCode ?? "E1004"}): ${detail}`;
    case Code.Unimplemented:
      return "This server does not offer that yet (Unimplemented).";
    case Code.Unavailable:
      return `The server is unavailable right now${e.kapselCode ? ` (${e.kapselCode})` : ""}: ${detail}`;
    case Code.DeadlineExceeded:
      return "The server took too long to answer.";
    case Code.Canceled:
      return "The request was cancelled.";
    default:
      return `${e.kapselCode ? `${e.kapselCode}: ` : ""}${detail}`;
  }
}

/** The server's own message, without connect-es's "[code]" prefix. */
function serverMessage(e: KapselError): string {
  return e.cause.rawMessage || Code[e.code] || "unknown error";
}

export function isUnimplemented(err: unknown): boolean {
  return err != null && asKapselError(err).code === Code.Unimplemented;
}
