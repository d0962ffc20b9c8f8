-- A cheaper hot path: fewer index writes per delivered event.
--
-- Every delivery outcome updates its event's row (status, attempt count, next attempt, updated_at).
-- The partial index events_failed named `status` in its predicate, which made every one of those
-- updates a non-HOT update: a new row version with a new entry in each of the events' indexes
-- (tenant, endpoint, message), about 40 % of the outcome write's WAL. Without it no indexed column
-- changes, so the update stays on its page (HOT) and writes no index entries; the free space kept
-- on each page lets the new version sit beside the old one. Failed events are still found through
-- events_endpoint_received and events_tenant_received (a range of an endpoint's or a tenant's
-- events, filtered by status), which is what a requeue or a status listing asks for.
DROP INDEX events_failed;
ALTER TABLE events SET (fillfactor = 80);
