#!/usr/bin/env node
// kapsel-witness: a C2SP tlog-witness server anyone can run next to the logs they depend on.
//   kapsel-witness serve --listen HOST:PORT --key-file FILE --state-dir DIR --log VKEY [--log VKEY …] [--name NAME]
//   kapsel-witness vkey --key-file FILE
// Exit status: 0 after a clean shutdown or printing the vkey, 1 when serving fails (state or
// listen errors), 2 for usage errors and unusable key files.
import { readFileSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { parseArgs } from "node:util";
import { parseVerifierKey, VerifyError, type VerifierKey } from "@kapsel/verify";
import { createWitnessServer } from "./http-server.ts";
import { StateError, StateStore } from "./state-store.ts";
import { DEFAULT_WITNESS_NAME, KeyFileError, loadWitnessKey } from "./witness-key.ts";
import { Witness } from "./witness.ts";

const USAGE = `usage:
  kapsel-witness serve --listen HOST:PORT --key-file FILE --state-dir DIR --log VKEY [--log VKEY ...] [--name NAME]
  kapsel-witness vkey --key-file FILE

serve     witnesses the logs whose vkeys are given (a vkey, or a file with one vkey a line);
          creates the key file (mode 0600) when it does not exist, named --name (default ${DEFAULT_WITNESS_NAME}).
          add-checkpoint is served at http://HOST:PORT/add-checkpoint.
vkey      prints the witness's cosigning vkey (type 0x04), for log operators and verifiers.`;

class UsageError extends Error {}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  try {
    if (command === "vkey") return await printVkey(rest);
    if (command === "serve") return await serve(rest);
    throw new UsageError(`unknown command "${command}"`);
  } catch (error) {
    if (error instanceof UsageError || error instanceof KeyFileError) {
      console.error(`kapsel-witness: ${error.message}`);
      if (error instanceof UsageError) console.error(USAGE);
      return 2;
    }
    if (error instanceof StateError) {
      console.error(`kapsel-witness: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

async function printVkey(args: readonly string[]): Promise<number> {
  const { values } = usage(() => parseArgs({ args: [...args], strict: true, options: { "key-file": { type: "string" } } }));
  if (values["key-file"] === undefined) throw new UsageError("vkey needs --key-file FILE");
  const { key } = await loadWitnessKey(values["key-file"], { create: false });
  console.log(key.vkey);
  return 0;
}

async function serve(args: readonly string[]): Promise<number> {
  const { values } = usage(() =>
    parseArgs({
      args: [...args],
      strict: true,
      options: {
        listen: { type: "string" },
        "key-file": { type: "string" },
        "state-dir": { type: "string" },
        log: { type: "string", multiple: true },
        name: { type: "string" },
      },
    }),
  );
  if (values.listen === undefined) throw new UsageError("serve needs --listen HOST:PORT");
  if (values["key-file"] === undefined) throw new UsageError("serve needs --key-file FILE");
  if (values["state-dir"] === undefined) throw new UsageError("serve needs --state-dir DIR");
  if (values.log === undefined || values.log.length === 0) throw new UsageError("serve needs at least one --log VKEY (a log to witness)");
  const listen = parseListen(values.listen);
  const logs = new Map<string, VerifierKey[]>();
  for (const key of values.log.flatMap(loadLogKeys)) logs.set(key.name, [...(logs.get(key.name) ?? []), key]);

  const { key, created, warning } = await loadWitnessKey(values["key-file"], { name: values.name, create: true });
  if (warning !== undefined) console.error(`kapsel-witness: warning: ${warning}`);
  const store = await StateStore.open(values["state-dir"]);
  try {
    // A corrupt state file stops the witness here rather than on the log's next request.
    for (const origin of logs.keys()) await store.load(origin);
    const witness = new Witness({ key, logs, store });
    const server = createWitnessServer(witness, (line) => console.error(`kapsel-witness: ${line}`));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen.port, listen.host, () => resolve());
    }).catch((error: unknown) => {
      throw new StateError(`cannot listen on ${values.listen}: ${(error as Error).message}`);
    });
    const { address, port } = server.address() as AddressInfo;
    const base = `http://${address.includes(":") ? `[${address}]` : address}:${port}`;
    if (created) console.log(`created key file ${values["key-file"]}`);
    console.log(`witness ${key.vkey}`);
    console.log(`witnessing ${[...logs.keys()].join(", ")}`);
    console.log(`listening on ${base} (add-checkpoint at ${base}/add-checkpoint)`);

    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        server.close(() => resolve());
        server.closeIdleConnections();
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    return 0;
  } finally {
    await store.close();
  }
}

/** Runs parseArgs, turning its errors (unknown option, missing value) into usage errors. */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** HOST:PORT, with [v6] brackets allowed; port 0 picks a free one. */
function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || port > 65_535) throw new UsageError(`--listen ${value}: expected HOST:PORT`);
  return { host: match[1] ?? match[2]!, port };
}

/** A `--log` value: a log vkey (type 0x01), or a file of them (blank lines and # comments allowed). */
function loadLogKeys(value: string): VerifierKey[] {
  let isFile = false;
  try {
    isFile = statSync(value).isFile();
  } catch {
    isFile = false;
  }
  const entries = isFile
    ? readFileSync(value, "utf8").split("\n").map((line, i) => ({ vkey: line.trim(), where: `--log ${value}, line ${i + 1}` }))
    : [{ vkey: value, where: "--log (neither a file nor a valid vkey)" }];
  const keys = entries
    .filter((entry) => entry.vkey !== "" && !entry.vkey.startsWith("#"))
    .map((entry) => {
      try {
        return parseVerifierKey(entry.vkey);
      } catch (error) {
        if (error instanceof VerifyError) throw new UsageError(`${entry.where}: ${error.message}`);
        throw error;
      }
    });
  if (keys.length === 0) throw new UsageError(`--log ${value}: the file holds no vkey`);
  return keys;
}

process.exitCode = await main(process.argv.slice(2));
