// Live updates for the event timeline: a WatchEvents stream that reconnects by itself. The server
// ends each stream at its deadline (and caps how many a tenant holds), so ending is normal: the
// hook opens the next one at once, and backs off only after errors. When a stream is established
// the caller refetches its list, so nothing that changed between two streams is missed.
import { useEffect, useRef, useState } from "react";
import { Code, type Event } from "@kapsel/sdk/web";
import { asKapselError } from "./errors.ts";
import { useClients } from "./use-clients.ts";

export type LiveState = "connecting" | "live" | "reconnecting" | "unavailable" | "busy";

const STREAM_MS = 10 * 60_000;

export function useWatchEvents(
  filter: { endpointId: string; eventType: string },
  onEvents: (events: Event[]) => void,
  onEstablished: () => void,
): LiveState {
  const { client } = useClients();
  const [state, setState] = useState<LiveState>("connecting");
  const handlers = useRef({ onEvents, onEstablished });
  handlers.current = { onEvents, onEstablished };

  useEffect(() => {
    const abort = new AbortController();
    let failures = 0;
    void (async () => {
      while (!abort.signal.aborted) {
        let established = false;
        try {
          setState(failures === 0 ? "connecting" : "reconnecting");
          const stream = client.management.watchEvents(filter, { signal: abort.signal, timeoutMs: STREAM_MS });
          for await (const res of stream) {
            if (!established) {
              established = true;
              failures = 0;
              setState("live");
              handlers.current.onEstablished();
            }
            if (res.events.length > 0) handlers.current.onEvents(res.events);
          }
        } catch (err) {
          if (abort.signal.aborted) return;
          const code = asKapselError(err).code;
          if (code === Code.Unimplemented) {
            setState("unavailable");
            return;
          }
          // A stream that ran to its deadline is the normal end; anything else backs off.
          if (!(established && code === Code.DeadlineExceeded)) {
            failures++;
            setState(code === Code.ResourceExhausted ? "busy" : "reconnecting");
            await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** Math.min(failures, 4), 15_000)));
          }
        }
      }
    })();
    return () => abort.abort();
  }, [client, filter.endpointId, filter.eventType]);

  return state;
}
