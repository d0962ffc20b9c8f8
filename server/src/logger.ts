// The one logger. JSON lines on stdout; secrets are redacted by path as a second fence behind
// "never log a secret".
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "kapsel" },
    redact: {
      paths: ["*.authorization", "*.apiKey", "*.api_key", "*.secret", "*.password", "*.signingSecret", "*.signing_secret", "headers.authorization"],
      censor: "[redacted]",
    },
  });
}
