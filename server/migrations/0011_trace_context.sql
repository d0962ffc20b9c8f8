-- W3C trace context (docs/observability.md). A message keeps the context its deliveries continue
-- from: the ingest span's when Kapsel traces, else the sender's own traceparent and tracestate,
-- kept only when valid and bounded (tracing/trace-context.ts). Each attempt keeps its own span's
-- traceparent, so that the sequencer's batch span can link to the attempts it logs, whichever
-- process made them. NULL when there was none. Written by ingest (message-insert.ts) and the job
-- queue (job-queue.ts complete).
ALTER TABLE messages ADD COLUMN traceparent text, ADD COLUMN tracestate text;
ALTER TABLE delivery_attempts ADD COLUMN traceparent text;

-- NOT VALID: new rows are checked, existing rows (all NULL) are not scanned.
ALTER TABLE messages ADD CONSTRAINT messages_traceparent_length CHECK (length(traceparent) = 55) NOT VALID;
ALTER TABLE messages ADD CONSTRAINT messages_tracestate_bound CHECK (octet_length(tracestate) <= 512) NOT VALID;
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_traceparent_length CHECK (length(traceparent) = 55) NOT VALID;
