// @kapsel/sdk/web for browsers, Deno, Bun and edge workers: the same client shape over the
// Connect protocol with fetch (connect-web). No Node built-in may enter this import graph;
// sdk/test/web-bundle.test.ts bundles it for the browser to keep it that way.
export { createKapselClient, createKapselTransport, type WebKapselClientOptions } from "./web-client.ts";
export * from "./common.ts";
