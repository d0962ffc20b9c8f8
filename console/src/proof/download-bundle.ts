// Downloads an attempt's proof bundle. An attempt is in the log only once the sequencer has
// signed a checkpoint over it (a second or so): until then the server answers E3001 with a retry
// hint, which is followed for a bounded time.
import type { KapselClient } from "@kapsel/sdk/web";
import { asKapselError } from "../api/errors.ts";

const MAX_WAIT_MS = 20_000;

export async function downloadBundle(client: KapselClient, attemptId: string): Promise<string> {
  const deadline = Date.now() + MAX_WAIT_MS;
  for (;;) {
    try {
      return (await client.attestation.getProofBundle({ attemptId })).bundle;
    } catch (err) {
      const e = asKapselError(err);
      if (e.kapselCode !== "E3001" || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, Math.min(Math.max(e.retryAfterMs ?? 500, 200), 2000)));
    }
  }
}
