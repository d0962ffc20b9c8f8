// @kapsel/sdk for Node: clients over gRPC, Connect or gRPC-Web (connect-node), plus the helpers
// that also ship in @kapsel/sdk/web.
export { createKapselClient, type KapselClientOptions, type NodeTransportKind } from "./node-client.ts";
export * from "./common.ts";
