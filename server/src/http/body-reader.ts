// Reading a request body that a stranger sends: capped while reading (never buffered past the
// cap), a sender that leaves mid-body told apart from a complete body, and after an early answer
// the rest discarded so the sender can read that answer.
import type { Req, Res } from "./plain-route.ts";

export class BodyTooLarge extends Error {}

/** The sender went away before its body was complete. Its own failure: nothing is stored, nothing
 * can be answered, and it must not read as a database outage (a reset's ECONNRESET would). */
export class SenderGone extends Error {}

/** Reads the body up to `cap` bytes; rejects with BodyTooLarge as soon as it would pass the cap,
 * and with SenderGone when the request ends without being complete. HTTP/2 ends the request
 * stream even when the sender reset it mid-body, so 'end' alone does not mean complete. */
export function readBody(req: Req, cap: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // 'close' comes for every request, after the body too; an Error (and its stack trace) is made
    // only when it still means something.
    let settled = false;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > cap) {
        req.off("data", onData);
        req.off("end", onEnd);
        chunks.length = 0;
        settled = true;
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      settled = true;
      if (req.aborted) reject(new SenderGone());
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const gone = () => {
      if (settled) return;
      settled = true;
      reject(new SenderGone());
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", gone);
    req.on("aborted", gone);
    req.on("close", gone);
  });
}

/** After answering early, discard (never buffer) what the sender still sends, so it can read our
 * answer; give up on senders that keep going far past the cap. */
export function drain(req: Req, res: Res, cap: number): void {
  if (req.readableEnded) return;
  let discarded = 0;
  req.removeAllListeners("data");
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > 4 * cap + 1024 * 1024) req.destroy();
  });
  req.on("error", () => {});
  req.resume();
  res.on("close", () => req.destroy());
}
