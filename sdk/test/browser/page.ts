// A dashboard-like page bundled from @kapsel/sdk/web for the real-browser test. It reads the API
// URL and key from its own query string, runs the calls a dashboard makes, and writes what
// happened into the page: a list of endpoints, the checkpoint, and the error of a call made
// without a key. `window.kapselVerifyWebhook` lets the test run verifyWebhook in the browser.
import { Code, createKapselClient, KapselError, verifyWebhook } from "@kapsel/sdk/web";

const params = new URLSearchParams(location.search);
const baseUrl = params.get("api") ?? "";
const apiKey = params.get("key") ?? "";

function show(id: string, text: string): void {
  const el = document.createElement("p");
  el.id = id;
  el.textContent = text;
  document.body.append(el);
}

async function main(): Promise<Record<string, unknown>> {
  const client = createKapselClient({ baseUrl, apiKey });
  const { endpoints } = await client.management.listEndpoints({});
  const list = document.createElement("ul");
  list.id = "endpoints";
  for (const e of endpoints) {
    const item = document.createElement("li");
    item.textContent = `${e.id} ${e.url}`;
    list.append(item);
  }
  document.body.append(list);

  const checkpoint = await client.attestation.getCheckpoint({});
  show("checkpoint", `${checkpoint.origin} size ${checkpoint.treeSize}`);

  let unauthenticated: Record<string, unknown>;
  try {
    await createKapselClient({ baseUrl }).management.listEndpoints({});
    unauthenticated = { succeeded: true };
  } catch (err) {
    unauthenticated = err instanceof KapselError
      ? { code: Code[err.code], kapselCode: err.kapselCode, requestId: err.requestId }
      : { other: String(err) };
  }
  show("unauthenticated", `${unauthenticated.code} ${unauthenticated.kapselCode}`);

  return {
    endpoints: endpoints.map((e) => e.id),
    checkpoint: { origin: checkpoint.origin, treeSize: String(checkpoint.treeSize), note: checkpoint.checkpoint },
    unauthenticated,
  };
}

(window as unknown as Record<string, unknown>).kapselVerifyWebhook = verifyWebhook;
main().then(
  (result) => {
    document.body.dataset.result = JSON.stringify(result);
  },
  (err: unknown) => {
    document.body.dataset.result = JSON.stringify({ failed: String(err) });
  },
);
