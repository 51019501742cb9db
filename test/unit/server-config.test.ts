/**
 * Configuration from the environment and flags: defaults, parsing, and a start-up error
 * that names the variable for every invalid value.
 */
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseListen } from "../../src/server/config.js";

describe("loadConfig", () => {
  it("has the documented defaults", () => {
    expect(loadConfig({}, [])).toEqual({
      listen: { host: "127.0.0.1", port: 50051 },
      dataDir: "./.agentorch-data",
      dockerHost: "unix:///var/run/docker.sock",
      imageAllowlist: [],
      workspaceMountPrefixes: ["/workspace", "/home", "/data", "/mnt", "/srv", "/opt"],
      networkAllowlist: [],
      agentCeilings: {
        maxAgentMemoryBytes: 8 * 1024 ** 3,
        maxAgentCpus: availableParallelism(),
        maxAgentPids: 4096,
        maxAgentOutputBytes: 64 * 1024 ** 2,
        maxAgentDiskBytes: 10 * 1024 ** 3,
        defaultAgentCpus: 1,
      },
      maxRunning: 100,
      enforceIntervalMs: 5000,
      containerUser: "65534:65534",
      workspaceQuota: "asked",
      maxRequestBytes: 4 * 1024 * 1024,
      shutdownGraceMs: 10_000,
      logLevel: "info",
      eventRetention: 100_000,
      reapIntervalMs: 30_000,
      watch: { bookmarkIntervalMs: 30_000, maxBuffer: 10_000 },
      net: {
        maxConnections: 1024,
        agentSocketMaxConnections: 1024,
        http2IdleTimeoutMs: 60_000,
        http1KeepAliveTimeoutMs: 5000,
        maxConcurrentStreams: 100,
        requestBodyTimeoutMs: 30_000,
        maxInflightBodyBytes: 64 * 1024 * 1024,
        corsOrigins: [],
      },
      mailbox: {
        maxMessageBytes: 256 * 1024,
        maxUnackedMessages: 10_000,
        maxUnackedBytes: 64 * 1024 * 1024,
        maxUnackedPerSender: 1000,
        maxUnackedBytesPerSender: 16 * 1024 * 1024,
        keepAliveMs: 30_000,
        ackedRetentionMs: 24 * 3600 * 1000,
      },
      metricsListen: undefined,
      operatorTokens: [],
    });
  });

  it("reads every variable", () => {
    const config = loadConfig({
      AGENTORCH_LISTEN: "[::1]:6000",
      AGENTORCH_DATA_DIR: "/var/lib/agentorch",
      DOCKER_HOST: "tcp://10.0.0.5:2375",
      AGENTORCH_IMAGE_ALLOWLIST: " agentorch/ , registry.local/team ,, ",
      AGENTORCH_MAX_RUNNING: "7",
      AGENTORCH_WORKSPACE_MOUNT_PREFIXES: " /agent , /data/x ",
      AGENTORCH_NETWORK_ALLOWLIST: "web-, registry.local/net/",
      AGENTORCH_MAX_AGENT_MEMORY: "2GiB",
      AGENTORCH_MAX_AGENT_CPUS: "2.5",
      AGENTORCH_MAX_AGENT_PIDS: "100",
      AGENTORCH_MAX_AGENT_OUTPUT_BYTES: "1MiB",
      AGENTORCH_MAX_AGENT_DISK: "1TiB",
      AGENTORCH_DEFAULT_AGENT_CPUS: "0.5",
      AGENTORCH_ENFORCE_INTERVAL_MS: "250",
      AGENTORCH_CONTAINER_USER: "1000:1000",
      AGENTORCH_MAX_REQUEST_BYTES: "1MiB",
      AGENTORCH_SHUTDOWN_GRACE_MS: "0",
      AGENTORCH_LOG_LEVEL: "DEBUG",
      AGENTORCH_EVENT_RETENTION: "500",
      AGENTORCH_REAP_INTERVAL_MS: "1000",
      AGENTORCH_WATCH_BOOKMARK_INTERVAL_MS: "0",
      AGENTORCH_WATCH_MAX_BUFFER: "50",
      AGENTORCH_MAX_MESSAGE_BYTES: "64KiB",
      AGENTORCH_MAILBOX_MAX_MESSAGES: "10",
      AGENTORCH_MAILBOX_MAX_BYTES: "1MiB",
      AGENTORCH_MAILBOX_KEEPALIVE_MS: "100",
      AGENTORCH_MAILBOX_ACKED_RETENTION_MS: "60000",
      AGENTORCH_METRICS_LISTEN: "127.0.0.1:9464",
      AGENTORCH_MAX_CONNECTIONS: "10",
      AGENTORCH_AGENT_SOCKET_MAX_CONNECTIONS: "11",
      AGENTORCH_HTTP2_IDLE_TIMEOUT_MS: "1000",
      AGENTORCH_HTTP1_KEEPALIVE_TIMEOUT_MS: "2000",
      AGENTORCH_MAX_CONCURRENT_STREAMS: "12",
      AGENTORCH_REQUEST_BODY_TIMEOUT_MS: "3000",
      AGENTORCH_MAX_INFLIGHT_BODY_BYTES: "8MiB",
      AGENTORCH_CORS_ORIGINS: "https://app.example.com, http://localhost:3000",
      AGENTORCH_WORKSPACE_QUOTA: "all",
    });
    expect(config).toEqual({
      listen: { host: "::1", port: 6000 },
      dataDir: "/var/lib/agentorch",
      dockerHost: "tcp://10.0.0.5:2375",
      imageAllowlist: ["agentorch/", "registry.local/team"],
      workspaceMountPrefixes: ["/agent", "/data/x"],
      networkAllowlist: ["web-", "registry.local/net/"],
      agentCeilings: {
        maxAgentMemoryBytes: 2 * 1024 ** 3,
        maxAgentCpus: 2.5,
        maxAgentPids: 100,
        maxAgentOutputBytes: 1024 ** 2,
        maxAgentDiskBytes: 1024 ** 4,
        defaultAgentCpus: 0.5,
      },
      maxRunning: 7,
      enforceIntervalMs: 250,
      containerUser: "1000:1000",
      workspaceQuota: "all",
      maxRequestBytes: 1024 * 1024,
      shutdownGraceMs: 0,
      logLevel: "debug",
      eventRetention: 500,
      reapIntervalMs: 1000,
      watch: { bookmarkIntervalMs: 0, maxBuffer: 50 },
      net: {
        maxConnections: 10,
        agentSocketMaxConnections: 11,
        http2IdleTimeoutMs: 1000,
        http1KeepAliveTimeoutMs: 2000,
        maxConcurrentStreams: 12,
        requestBodyTimeoutMs: 3000,
        maxInflightBodyBytes: 8 * 1024 * 1024,
        corsOrigins: ["https://app.example.com", "http://localhost:3000"],
      },
      mailbox: { maxMessageBytes: 64 * 1024, maxUnackedMessages: 10, maxUnackedBytes: 1024 * 1024, maxUnackedPerSender: 1000, maxUnackedBytesPerSender: 16 * 1024 * 1024, keepAliveMs: 100, ackedRetentionMs: 60_000 },
      metricsListen: { host: "127.0.0.1", port: 9464 },
      operatorTokens: [],
    });
  });

  it("refuses workspace mount prefixes that are not absolute, normalised, or that are or hold system directories", () => {
    for (const bad of ["relative", "//data", "/data/../etc", "/", "/data/", "/etc", "/usr/local", "/run", "/a b", ","]) {
      const load = () => loadConfig({ AGENTORCH_WORKSPACE_MOUNT_PREFIXES: bad });
      expect(load, bad).toThrow(ConfigError);
      expect(load, bad).toThrow(/AGENTORCH_WORKSPACE_MOUNT_PREFIXES/);
    }
  });

  it("refuses ceilings out of range, naming the variable", () => {
    for (const [name, bad] of [
      ["AGENTORCH_MAX_AGENT_CPUS", "0.001"],
      ["AGENTORCH_MAX_AGENT_CPUS", "1e-12"],
      ["AGENTORCH_MAX_AGENT_MEMORY", "1MiB"],
      ["AGENTORCH_MAX_AGENT_PIDS", "0"],
      ["AGENTORCH_MAX_AGENT_OUTPUT_BYTES", "1GiB"],
      ["AGENTORCH_MAX_AGENT_DISK", "1k"],
      ["AGENTORCH_DEFAULT_AGENT_CPUS", "0"],
    ] as const) {
      expect(() => loadConfig({ [name]: bad }), `${name}=${bad}`).toThrow(new RegExp(name));
    }
    expect(() => loadConfig({ AGENTORCH_MAX_AGENT_CPUS: "1", AGENTORCH_DEFAULT_AGENT_CPUS: "2" })).toThrow(/AGENTORCH_DEFAULT_AGENT_CPUS \(2\) may not be above AGENTORCH_MAX_AGENT_CPUS/);
    expect(() => loadConfig({ AGENTORCH_WORKSPACE_QUOTA: "loop" })).toThrow(/AGENTORCH_WORKSPACE_QUOTA must be one of asked, all, off \(got "loop"\)/);
  });

  it("lets --listen and --data-dir override the variables", () => {
    const env = { AGENTORCH_LISTEN: "127.0.0.1:1", AGENTORCH_DATA_DIR: "/a" };
    expect(loadConfig(env, ["--listen", "127.0.0.2:7000", "--data-dir=/b"])).toMatchObject({
      listen: { host: "127.0.0.2", port: 7000 },
      dataDir: "/b",
    });
    expect(() => loadConfig({}, ["--port", "1"])).toThrow(/unknown flag "--port"/);
    expect(() => loadConfig({}, ["--listen"])).toThrow(/--listen needs a value/);
  });

  it("parses listen addresses", () => {
    expect(parseListen("X", "localhost:0")).toEqual({ host: "localhost", port: 0 });
    expect(parseListen("X", ":50051")).toEqual({ host: "0.0.0.0", port: 50051 });
    expect(parseListen("X", "[::]:80")).toEqual({ host: "::", port: 80 });
    for (const bad of ["50051", "127.0.0.1", "127.0.0.1:65536", "127.0.0.1:-1", "::1:80", "[::1]80", "[127.0.0.1]:80", "a b:1", "host:port"]) {
      expect(() => parseListen("AGENTORCH_LISTEN", bad), bad).toThrow(ConfigError);
    }
  });

  it.each([
    ["AGENTORCH_LISTEN", "nowhere"],
    ["DOCKER_HOST", "/var/run/docker.sock"],
    ["DOCKER_HOST", "unix://relative.sock"],
    ["DOCKER_HOST", "http://localhost:2375"],
    ["AGENTORCH_MAX_RUNNING", "0"],
    ["AGENTORCH_MAX_RUNNING", "ten"],
    ["AGENTORCH_MAX_RUNNING", "1.5"],
    ["AGENTORCH_ENFORCE_INTERVAL_MS", "-5"],
    ["AGENTORCH_CONTAINER_USER", "0:0"],
    ["AGENTORCH_CONTAINER_USER", "root"],
    ["AGENTORCH_MAX_REQUEST_BYTES", "12"],
    ["AGENTORCH_MAX_CONNECTIONS", "0"],
    ["AGENTORCH_MAX_CONCURRENT_STREAMS", "many"],
    ["AGENTORCH_HTTP2_IDLE_TIMEOUT_MS", "5"],
    ["AGENTORCH_MAX_INFLIGHT_BODY_BYTES", "1KiB"],
    ["AGENTORCH_CORS_ORIGINS", "https://app.example.com/path"],
    ["AGENTORCH_CORS_ORIGINS", "app.example.com"],
    ["AGENTORCH_MAX_REQUEST_BYTES", "4 parsecs"],
    ["AGENTORCH_MAX_REQUEST_BYTES", "8GiB"],
    ["AGENTORCH_SHUTDOWN_GRACE_MS", "soon"],
    ["AGENTORCH_LOG_LEVEL", "loud"],
    ["AGENTORCH_EVENT_RETENTION", "0"],
  ])("refuses %s=%s with an error naming it", (name, value) => {
    let caught: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).variable).toBe(name);
    expect((caught as ConfigError).message).toContain(name);
    expect((caught as ConfigError).message).toContain(value);
  });

  it("treats empty variables as unset", () => {
    expect(loadConfig({ AGENTORCH_LISTEN: "", DOCKER_HOST: " ", AGENTORCH_MAX_RUNNING: "" })).toMatchObject({
      listen: { host: "127.0.0.1", port: 50051 },
      dockerHost: "unix:///var/run/docker.sock",
      maxRunning: 100,
    });
  });
});
