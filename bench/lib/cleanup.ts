/**
 * Last-resort cleanup: when the benchmark is interrupted (Ctrl-C, SIGTERM) or fails, the
 * containers it created are removed anyway, by the labels it gave them. Each benchmark
 * also cleans up after itself in `finally`; this catches what an interruption skips.
 */
import { removeLabelled, rawDocker } from "./docker-raw.js";

const labels = new Set<string>();
const children = new Set<{ kill(signal?: NodeJS.Signals): unknown }>();

/** Containers with this label (key=value) are removed at exit if still there. */
export function trackLabel(label: string): void {
  labels.add(label);
}

/** A child process killed at exit if still running. */
export function trackChild(child: { kill(signal?: NodeJS.Signals): unknown }): () => void {
  children.add(child);
  return () => children.delete(child);
}

/** Removes every tracked container; returns how many. */
export async function removeTracked(): Promise<number> {
  const docker = rawDocker();
  let n = 0;
  for (const label of labels) {
    try {
      n += await removeLabelled(docker, label);
    } catch {
      // no engine: nothing to remove
    }
  }
  return n;
}

/** Installs the signal handlers (once). */
export function installCleanup(): void {
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\n${signal}: stopping, removing the benchmark's containers…`);
    for (const c of children) c.kill("SIGKILL");
    removeTracked().then(
      (n) => {
        console.error(`removed ${n} container(s)`);
        process.exit(130);
      },
      () => process.exit(130),
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}
