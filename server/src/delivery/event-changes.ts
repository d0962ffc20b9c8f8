// In-process notice that an event's state changed, so WatchEvent answers at once instead of on its
// next poll. Changes made by other processes reach watchers through that poll.
import { EventEmitter } from "node:events";

export class EventChanges {
  readonly #emitter = new EventEmitter().setMaxListeners(0);

  changed(eventIds: Iterable<string>): void {
    for (const id of eventIds) this.#emitter.emit(id);
  }

  /** Resolves on the next change of the event, after `timeoutMs`, or when the signal aborts. */
  next(eventId: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#emitter.off(eventId, done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#emitter.on(eventId, done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
