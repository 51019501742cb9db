/**
 * The one definition of a hardened agent container (DESIGN.md "Containers"), as a pure
 * function of the spec, so the adapter and the benchmark create exactly the same thing.
 */
import { randomBytes } from "node:crypto";
import type Dockerode from "dockerode";
import type { ContainerLabels, ContainerSpec } from "../../core/ports.js";

/** Label keys every agentorch container carries; list/watch/adoption select on them. */
export const LABELS = {
  managed: "agentorch.managed",
  agentId: "agentorch.agent-id",
  instance: "agentorch.instance",
  taskId: "agentorch.task-id",
} as const;

/** Where the service's socket directory appears inside the container. */
export const SOCKET_MOUNT_POINT = "/run/agentorch";

/** /tmp is writable scratch space but never executable, and small. */
export const TMPFS_OPTIONS = "rw,noexec,nosuid,nodev,size=64m";

/**
 * json-file's max-size counts encoded JSON, ~70 bytes of envelope per log line (measured
 * here: 10-byte lines kept 730 raw bytes of 5.8 KB on disk; 14-byte stderr lines, 1.4 KB
 * of 8.2 KB). A file of maxOutputBytes would keep far less than maxOutputBytes of output.
 * So each of the two files holds 4x maxOutputBytes and at least 1 MiB: the last
 * maxOutputBytes survive rotation for lines of ~25 bytes and more (any line length for
 * caps up to ~14 KiB), and disk use stays bounded at 2 files of that size.
 */
export const LOG_SIZE_FACTOR = 4;
export const LOG_MIN_FILE_BYTES = 1024 * 1024;
export const LOG_MAX_FILES = 2;

/** The json-file max-size (bytes) for an output cap. */
export function logFileBytes(maxOutputBytes: number): number {
  return Math.max(maxOutputBytes * LOG_SIZE_FACTOR, LOG_MIN_FILE_BYTES);
}

/** A fresh, recognisable container name: agentorch-<agentId>-<6 hex>. */
export function containerName(agentId: string): string {
  return `agentorch-${agentId}-${randomBytes(3).toString("hex")}`;
}

/** Docker labels for our labels. */
export function toDockerLabels(labels: ContainerLabels): Record<string, string> {
  const out: Record<string, string> = {
    [LABELS.managed]: "true",
    [LABELS.agentId]: labels.agentId,
    [LABELS.instance]: labels.instanceId,
  };
  if (labels.taskId !== undefined && labels.taskId !== "") out[LABELS.taskId] = labels.taskId;
  return out;
}

/** Our labels from Docker labels (or event attributes); missing ones read as "". */
export function fromDockerLabels(labels: Record<string, string> | undefined): ContainerLabels {
  const l = labels ?? {};
  const out: ContainerLabels = { agentId: l[LABELS.agentId] ?? "", instanceId: l[LABELS.instance] ?? "" };
  const taskId = l[LABELS.taskId];
  if (taskId !== undefined && taskId !== "") out.taskId = taskId;
  return out;
}

/**
 * The create options for one hardened container. `name` is included (dockerode sends it
 * as a query parameter); everything else is the request body.
 */
export function buildCreateOptions(
  spec: ContainerSpec,
  user: string,
  name: string = containerName(spec.labels.agentId),
): Dockerode.ContainerCreateOptions {
  const { resources, workspace } = spec;
  const binds = [`${workspace.hostPath}:${workspace.mountPoint}:${workspace.readOnly ? "ro" : "rw"}`];
  if (spec.socketDir !== undefined && spec.socketDir !== "") binds.push(`${spec.socketDir}:${SOCKET_MOUNT_POINT}:ro`);

  const hostConfig: Dockerode.HostConfig = {
    NetworkMode: spec.policy === "container_direct" ? "bridge" : "none",
    CapDrop: ["ALL"],
    SecurityOpt: ["no-new-privileges"],
    ReadonlyRootfs: true,
    Tmpfs: { "/tmp": TMPFS_OPTIONS },
    Privileged: false,
    Init: true,
    AutoRemove: false,
    PidsLimit: resources.pidsLimit,
    Memory: resources.memoryBytes,
    // Equal to Memory: no swap, so the memory limit is the real limit.
    MemorySwap: resources.memoryBytes,
    Binds: binds,
    LogConfig: {
      Type: "json-file",
      Config: {
        "max-size": String(logFileBytes(resources.maxOutputBytes)),
        "max-file": String(LOG_MAX_FILES),
      },
    },
  };
  if (resources.cpus > 0) hostConfig.NanoCpus = Math.round(resources.cpus * 1e9);

  const options: Dockerode.ContainerCreateOptions = {
    name,
    Image: spec.image,
    User: user,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: workspace.mountPoint,
    Labels: toDockerLabels(spec.labels),
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    HostConfig: hostConfig,
  };
  if (spec.command.length > 0) options.Cmd = spec.command;
  return options;
}
