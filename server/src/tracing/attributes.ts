// Kapsel's own span attribute names (the `kapsel.` namespace), beside the semantic conventions'
// names (@opentelemetry/semantic-conventions). Incubating conventions are copied here as strings,
// as the conventions package advises, so that an upgrade cannot rename them under us.

export const KAPSEL_TENANT_ID = "kapsel.tenant_id";
export const KAPSEL_ENDPOINT_ID = "kapsel.endpoint_id";
export const KAPSEL_SOURCE_ID = "kapsel.source_id";
export const KAPSEL_EVENT_ID = "kapsel.event_id";
export const KAPSEL_MESSAGE_ID = "kapsel.message_id";
export const KAPSEL_EVENT_TYPE = "kapsel.event_type";
export const KAPSEL_ATTEMPT = "kapsel.attempt";
export const KAPSEL_ATTEMPT_ID = "kapsel.attempt_id";
export const KAPSEL_OUTCOME = "kapsel.outcome";
export const KAPSEL_DECISION = "kapsel.decision";
export const KAPSEL_PROBE = "kapsel.probe";
export const KAPSEL_DUPLICATE = "kapsel.duplicate";
export const KAPSEL_EVENT_COUNT = "kapsel.event_count";
/** Messages in a group commit, attempts in a sequencer batch, items in an IngestBatch. */
export const KAPSEL_BATCH_SIZE = "kapsel.batch.size";
export const KAPSEL_TREE_SIZE = "kapsel.log.tree_size";
/** The error code (E1003, …) of a refused ingest; error.type carries it too. */
export const KAPSEL_ERROR_CODE = "kapsel.error_code";

export const RPC_SYSTEM = "rpc.system";
export const RPC_SERVICE = "rpc.service";
export const RPC_METHOD = "rpc.method";
