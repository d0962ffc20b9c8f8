// Adds `Authorization: Bearer <API key>` to every call. A function lets long-lived clients (a
// dashboard whose session hands out short-lived keys) supply the current key per call.
import type { Interceptor } from "@connectrpc/connect";

export type ApiKeySource = string | (() => string | Promise<string>);

export function bearerAuth(apiKey: ApiKeySource): Interceptor {
  return (next) => async (req) => {
    const key = typeof apiKey === "function" ? await apiKey() : apiKey;
    if (key) req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
}
