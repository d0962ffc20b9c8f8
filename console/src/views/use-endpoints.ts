// The tenant's endpoints (first 500), for pickers and for showing an endpoint's URL by its id.
import { useQuery } from "@connectrpc/connect-query";
import { ManagementService, type Endpoint } from "@kapsel/sdk/web";

export function useEndpointIndex(): { endpoints: Endpoint[]; byId: Map<string, Endpoint> } {
  const { data } = useQuery(ManagementService.method.listEndpoints, { pageSize: 500 });
  const endpoints = data?.endpoints ?? [];
  return { endpoints, byId: new Map(endpoints.map((e) => [e.id, e])) };
}
