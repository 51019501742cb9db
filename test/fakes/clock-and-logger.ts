/** A clock tests move by hand, and a logger that records lines (silent by default). */
import type { Clock, Logger } from "../../src/core/ports.js";

export class ManualClock implements Clock {
  constructor(public ms = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface LogLine {
  level: string;
  msg?: string;
  obj: object;
}

export function createTestLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): Logger {
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, msg, obj: { ...bindings, ...obj } });
    if (process.env.AGENTORCH_TEST_LOG) console.log(level, msg, obj);
  };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (b) => createTestLogger(lines, { ...bindings, ...b }),
  };
}
