import { execFileSync } from "node:child_process";

/** Runs a Node script of the lint step: its exit code, and stdout (on success) or stderr. */
export function runScript(script: string, ...args: string[]): { code: number; output: string } {
  try {
    const out = execFileSync(process.execPath, [script, ...args], { encoding: "utf8", stdio: "pipe" });
    return { code: 0, output: out };
  } catch (err) {
    const e = err as { status: number; stderr: string };
    return { code: e.status, output: e.stderr };
  }
}
