#!/usr/bin/env node
// The CLI lives in dist/ (compiled from src/cli.ts). This committed shim exists so npm can link the
// bin during install, before the build step has produced dist/.
import "../dist/cli.js";
