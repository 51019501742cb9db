/**
 * The machine the figures were measured on, recorded with every result: cores, memory,
 * versions, and the load average before and after (the machine is shared: a high load
 * says the absolute figures are noisy; ratios against the same-run baseline still hold).
 */
import os from "node:os";
import { rawDocker } from "./docker-raw.js";
import { h2loadVersion } from "./h2load.js";

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  docker?: string;
  h2load?: string;
  loadAverage: number[];
}

export async function machineInfo(): Promise<MachineInfo> {
  let docker: string | undefined;
  try {
    const v = await rawDocker().version();
    docker = v.Version;
  } catch {
    docker = undefined;
  }
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    docker,
    h2load: h2loadVersion(),
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export function describeMachine(m: MachineInfo, withLoad = true): string {
  return [
    `${m.cpus} CPU (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.os}`,
    `node ${m.node}, Docker ${m.docker ?? "not reachable"}, ${m.h2load ?? "h2load not installed"}`,
    ...(withLoad ? [`load average at start ${m.loadAverage.join(" / ")}`] : []),
  ].join("; ");
}
