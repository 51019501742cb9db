/**
 * The service's pino logger: JSON lines on stdout. Fields that could carry a secret are
 * redacted wherever they appear, as a second line of defence behind "never log tokens".
 */
import { pino } from "pino";
import type { DestinationStream } from "pino";
import type { Logger } from "../core/ports.js";
import type { LogLevel } from "./config.js";

/** Keys that are censored at the top level and one level down. */
const SECRET_KEYS = ["token", "authorization", "password", "secret", "headers", "header"];

/** A pino logger that satisfies the core's Logger port. destination: for tests (default stdout). */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger & { level: string } {
  return pino(
    {
      level,
      base: { service: "agentorch" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`)], censor: "[redacted]" },
    },
    destination,
  );
}
