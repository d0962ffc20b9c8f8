// Filtering lists by event type: an exact name, or a `prefix.*` wildcard (`kapsel.*` lists
// Kapsel's operational events), the same patterns endpoints subscribe with.
import { sql, type IdentifierSqlToken } from "slonik";
import { checkSubscription } from "../ingest/subscriptions.ts";

/** A condition on an event type column (E1006 for a malformed filter). */
export function eventTypeIs(column: IdentifierSqlToken, filter: string) {
  checkSubscription([filter], []);
  if (filter.endsWith(".*")) return sql.fragment`starts_with(${column}, ${filter.slice(0, -1)})`;
  return sql.fragment`${column} = ${filter}`;
}
