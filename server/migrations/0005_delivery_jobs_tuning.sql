-- The queue's claims update lease columns only; with half of each page free those updates stay on
-- the page (HOT) and leave no index entries behind. The per-endpoint index serves circuit probes
-- and per-endpoint counts, which otherwise scan the whole queue.
ALTER TABLE delivery_jobs SET (fillfactor = 50);
CREATE INDEX delivery_jobs_endpoint_due ON delivery_jobs (endpoint_id, run_at);
