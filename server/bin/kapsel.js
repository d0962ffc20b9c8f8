#!/usr/bin/env node
// The `kapsel` command. In a clone of the repository it runs the TypeScript sources with Node's
// type stripping, so development needs no build step and never runs a stale build; the published
// package has no src/ (its `files` leave it out) and runs the JavaScript compiled into dist/ on
// prepack, because Node does not strip types inside node_modules.
import { existsSync } from "node:fs";

const source = new URL("../src/cli.ts", import.meta.url);
await import(existsSync(source) ? source.href : "../dist/cli.js");
