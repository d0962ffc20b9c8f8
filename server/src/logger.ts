// The one logger. JSON lines with ISO timestamps and level names, for log shippers; readable lines
// (pino-pretty) when stdout is a terminal, for a person. Secrets are redacted by path as a second
// fence behind "never log a secret".
import { pino, stdTimeFunctions, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger };

export interface LoggerOptions {
  /** Readable lines instead of JSON (default: when stdout is a terminal). */
  pretty?: boolean;
  /** Where lines go (default stdout). */
  destination?: NodeJS.WritableStream;
}

export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const opts = {
    level,
    base: { service: "kapsel" },
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: {
      paths: ["*.authorization", "*.apiKey", "*.api_key", "*.secret", "*.password", "*.signingSecret", "*.signing_secret", "headers.authorization"],
      censor: "[redacted]",
    },
  };
  const toTerminal = options.pretty ?? process.stdout.isTTY === true;
  // Synchronous and in-process: lines keep their order with the rest of the output.
  if (toTerminal) return pino(opts, pretty({ colorize: true, sync: true, ignore: "service,pid,hostname", destination: options.destination }));
  return options.destination ? pino(opts, options.destination) : pino(opts);
}
