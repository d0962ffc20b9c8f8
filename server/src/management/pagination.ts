// Opaque cursors: a page token is the base64url of the last row's position, so pages stay stable
// while rows are added. Bad tokens are E1006.
import { KapselError } from "../errors.ts";

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export function pageSize(requested: number): number {
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  if (requested > MAX_PAGE_SIZE) throw new KapselError("E1006", `page_size must be at most ${MAX_PAGE_SIZE}`);
  return requested;
}

export function encodeCursor(position: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

/** Decodes a cursor of `n` parts, or undefined for the first page. */
export function decodeCursor(token: string, n: number): string[] | undefined {
  if (token === "") return undefined;
  try {
    const parts: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (Array.isArray(parts) && parts.length === n && parts.every((p) => typeof p === "string")) return parts as string[];
  } catch {
    // fall through
  }
  throw new KapselError("E1006", "page_token is not valid");
}

/** Given limit+1 rows, returns the page and the token for the next one. */
export function paginate<T>(rows: readonly T[], limit: number, position: (last: T) => string[]): { items: T[]; next: string } {
  if (rows.length <= limit) return { items: [...rows], next: "" };
  const items = rows.slice(0, limit);
  return { items, next: encodeCursor(position(items.at(-1)!)) };
}
