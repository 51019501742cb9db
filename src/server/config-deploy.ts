/**
 * Settings for running the service in a container beside the Docker engine it drives
 * (README "Run it in a container"), read with the rest of the configuration.
 */
import path from "node:path";
import { ConfigError } from "./config-error.js";

export interface DeployConfig {
  /**
   * AGENTORCH_HOST_DATA_DIR: the data directory's path on the engine's host, when the service
   * sees it at another path (a container's mount). Bind sources under the data directory
   * (workspaces, the agent socket) are handed to the engine under this path. Unset: the
   * service finds its own container's mounts through the engine, or uses paths as they are.
   */
  hostDataDir?: string;
}

/** Reads the DeployConfig variables; throws ConfigError naming the variable. */
export function parseDeployConfig(env: Record<string, string | undefined>): DeployConfig {
  const name = "AGENTORCH_HOST_DATA_DIR";
  const text = env[name]?.trim();
  if (text === undefined || text === "") return {};
  // It becomes the source of a "SOURCE:TARGET:ro" bind: no ':' or ',' in it.
  if (!path.posix.isAbsolute(text) || /[:,\0]/.test(text)) {
    throw new ConfigError(name, `${name} must be an absolute path on the Docker engine's host, without ':' or ',', e.g. /srv/agentorch (got "${text}")`);
  }
  return { hostDataDir: path.posix.resolve(text) };
}
