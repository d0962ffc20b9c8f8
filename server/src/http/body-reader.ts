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

/** Bodies up to this size are read and dropped after an early answer, keeping the connection. */
const DISCARDED_BODY_BYTES = 64 * 1024;

/**
 * Answers (through `answer`) a request refused before its body was read, and deals with the rest
 * of the body. A body already received, or declared small, is read and dropped so the connection
 * carries the sender's next request: under overload a refusal that cost a new connection each time
 * would be as dear as an acceptance. A large or undeclared body is not worth reading: an HTTP/1.1
 * connection is closed after the answer (and says so), an HTTP/2 stream is reset. What is still
 * read is discarded, never buffered, and bounded by the body timeouts.
 */
export function refuseBody(req: Req, res: Res, answer: () => void): void {
  if (req.readableEnded) {
    answer();
    return;
  }
  // HTTP/1.1 without Content-Length or Transfer-Encoding has no body.
  const length = req.headers["content-length"];
  const declared = length !== undefined ? Number(length) : req.headers["transfer-encoding"] === undefined && req.httpVersionMajor === 1 ? 0 : Infinity;
  const keep = req.complete || declared <= DISCARDED_BODY_BYTES;
  const h1 = req.httpVersionMajor === 1;
  if (!keep && h1 && !res.headersSent) res.setHeader("connection", "close");
  answer();
  // HTTP/1.1 reads and drops a small unread body itself once the answer is finished (and a body
  // still flowing without listeners is dropped as it comes): nothing to add on the cheapest path.
  if (keep && h1) return;
  let discarded = 0;
  req.removeAllListeners("data");
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARDED_BODY_BYTES) req.destroy();
  });
  req.on("error", () => {});
  req.resume();
  if (!keep) res.on("close", () => req.destroy());
}
