// The generated contracts, re-exported so SDK users need no second import: service descriptors
// (for createClient or a server), message types and schemas (for create()), enums.
export * from "@kapsel/contracts";
