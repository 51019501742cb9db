/**
 * Reads a DOCKER_HOST-style address (unix:///path, tcp://host:port, a bare host:port)
 * into docker-modem options, so the service reaches the engine the same way Docker's own
 * tools do and names that address in its errors. Resolved here, once, instead of leaving
 * docker-modem to read the environment behind our back.
 */
import type Dockerode from "dockerode";

export const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

export interface EngineAddress {
  /** Canonical form, for error messages and logs. */
  endpoint: string;
  modemOptions: Dockerode.DockerOptions;
}

/** Throws a plain Error for an address it cannot use (a configuration error, reported at start-up). */
export function parseDockerHost(dockerHost: string | undefined): EngineAddress {
  const raw = dockerHost === undefined || dockerHost.trim() === "" ? DEFAULT_DOCKER_HOST : dockerHost.trim();
  if (raw.startsWith("unix://")) {
    const socketPath = raw.slice("unix://".length) || "/var/run/docker.sock";
    return { endpoint: `unix://${socketPath}`, modemOptions: { socketPath } };
  }
  if (raw.startsWith("/")) return { endpoint: `unix://${raw}`, modemOptions: { socketPath: raw } };
  const withScheme = raw.includes("://") ? raw : `tcp://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`invalid Docker host "${raw}": expected unix:///path or tcp://host:port`);
  }
  if (url.protocol !== "tcp:" && url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`unsupported Docker host "${raw}": only unix:// and tcp:// are supported`);
  }
  const https = url.protocol === "https:" || url.port === "2376";
  const port = url.port || (https ? "2376" : "2375");
  return {
    endpoint: `tcp://${url.hostname}:${port}`,
    modemOptions: { host: url.hostname, port, protocol: https ? "https" : "http" },
  };
}
