// @kapsel/sdk/web must run where there is no Node: its whole import graph has to bundle for the
// browser. esbuild refuses Node built-ins (node:http2, node:crypto, …) for platform "browser",
// so a clean build proves the graph is free of them; the Node entry point is the control case.
import { fileURLToPath } from "node:url";
import { build, type BuildFailure, type Metafile } from "esbuild";
import { beforeAll, describe, expect, it } from "vitest";

const entry = (name: string) => fileURLToPath(new URL(`../src/${name}`, import.meta.url));

function bundleForBrowser(file: string) {
  return build({ entryPoints: [file], bundle: true, platform: "browser", format: "esm", write: false, metafile: true, logLevel: "silent" });
}

describe("the browser bundle", () => {
  let outcome: { metafile: Metafile; errors: unknown[] } | { failure: unknown };
  beforeAll(async () => {
    outcome = await bundleForBrowser(entry("web.ts")).then((r) => ({ metafile: r.metafile, errors: r.errors }), (failure: unknown) => ({ failure }));
  });

  it("@kapsel/sdk/web bundles for platform browser", () => {
    expect(outcome).toMatchObject({ errors: [] });
  });

  it("nothing in its import graph is a Node built-in or connect-node", () => {
    if (!("metafile" in outcome)) throw new Error("the bundle failed");
    const { metafile } = outcome;
    const inputs = Object.keys(metafile.inputs);
    const imports = Object.values(metafile.inputs).flatMap((i) => i.imports.map((x) => x.path));
    expect(inputs.filter((p) => p.includes("@connectrpc/connect-node"))).toEqual([]);
    expect(imports.filter((p) => p.startsWith("node:") || /^(http2?|https|net|tls|crypto|zlib|stream|buffer|fs)$/.test(p))).toEqual([]);
    // What it does contain: the fetch transport and the verifier the proof helper uses (from its
    // sources: esbuild follows the `paths` in tsconfig.json, as the tests do).
    expect(inputs.some((p) => p.includes("@connectrpc/connect-web"))).toBe(true);
    expect(inputs.some((p) => p.endsWith("verifier/src/verify.ts"))).toBe(true);
  });

  it("the Node entry point does not bundle for the browser (the check above can fail)", async () => {
    const failure = (await bundleForBrowser(entry("index.ts")).then(() => undefined, (e: unknown) => e)) as BuildFailure | undefined;
    expect(failure?.errors.map((e) => e.text).join("\n")).toMatch(/Could not resolve "(node:)?(http2|http|https|zlib|net|url)"/);
  });
});
