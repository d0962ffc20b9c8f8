// Fixtures for SDK tests that need an endpoint but no delivery.
import { addEndpoint } from "../../../test/support/delivery.ts";

/** Server settings for ingest-only tests: no delivery workers, so no endpoint URL is contacted. */
export const NO_DELIVERY = { KAPSEL_DELIVERY_ENABLED: "false" };

/** Creates an endpoint at a public address for the tenant of `apiKey`; returns its id. */
export async function createEndpoint(baseUrl: string, apiKey: string): Promise<string> {
  return (await addEndpoint(baseUrl, apiKey, "https://93.184.216.34/hook")).endpointId;
}
