/**
 * What the kernel says about a process: resident memory and CPU time used, read from
 * /proc (Linux). The service runs as its own process in every benchmark, so these are
 * its own figures, not the benchmark's.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Resident set size in MiB (VmRSS), or NaN when the process is gone. */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** User + system CPU time the process has used so far, in milliseconds (10 ms resolution). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / clockTicks();
  } catch {
    return NaN;
  }
}

/**
 * Waits until a process is (nearly) idle: under 10% of a core over 250 ms, or maxMs. An
 * overloaded server keeps working through queued requests after its client stopped; the
 * next run must not pay for that.
 */
export async function waitIdle(cpu: () => number, maxMs = 15_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = cpu();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const now = cpu();
    if (!(now - last > 25)) return;
    last = now;
  }
}
