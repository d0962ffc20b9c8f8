// The signed-in session's clients, for views that stream or run multi-step flows.
import { createContext, useContext } from "react";
import type { Credential } from "../session/credential.ts";
import type { Clients } from "./clients.ts";

export const ClientsContext = createContext<(Clients & { credential: Credential }) | undefined>(undefined);

export function useClients(): Clients & { credential: Credential } {
  const value = useContext(ClientsContext);
  if (!value) throw new Error("useClients outside a signed-in session");
  return value;
}
