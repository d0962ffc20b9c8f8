#!/usr/bin/env node
// The `kapsel` command. The sources are TypeScript run by Node 24's built-in type stripping.
import "../src/cli.ts";
