/**
 * Configuration from the environment and flags: defaults, parsing, and a start-up error
 * that names the variable for every invalid value.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatSubject, subjectMatches } from "../../src/core/auth.js";
import { ConfigError, loadConfig, parseListen, parseOperatorCredentials } from "../../src/server/config.js";
import { makeTestPki } from "../support/tls-certs.js";
import type { TestPki } from "../support/tls-certs.js";

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
      certIdentities: [],
      insecureListen: false,
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
      certIdentities: [],
      insecureListen: false,
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

/** The ConfigError fn throws (fails the test when it throws nothing or something else). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("TLS settings", () => {
  let pki: TestPki;
  let tls: Record<string, string>;
  beforeAll(() => {
    pki = makeTestPki();
    tls = { AGENTORCH_TLS_CERT: pki.server.cert, AGENTORCH_TLS_KEY: pki.server.key };
  });
  afterAll(() => pki?.remove());

  it("reads the files and the client-auth mode (require by default with a client CA)", () => {
    expect(loadConfig(tls).tls).toEqual({ certFile: pki.server.cert, keyFile: pki.server.key, clientAuth: "off", handshakeTimeoutMs: 10_000 });
    expect(loadConfig({ ...tls, AGENTORCH_TLS_CLIENT_CA: pki.ca.cert }).tls).toMatchObject({ clientCaFile: pki.ca.cert, clientAuth: "require" });
    expect(loadConfig({ ...tls, AGENTORCH_TLS_CLIENT_CA: pki.ca.cert, AGENTORCH_TLS_CLIENT_AUTH: "optional", AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS: "2500" }).tls).toMatchObject({
      clientAuth: "optional",
      handshakeTimeoutMs: 2500,
    });
    expect(loadConfig({}).tls).toBeUndefined();
  });

  it("wants the certificate and the key together, and TLS for a client CA", () => {
    const certOnly = configError(() => loadConfig({ AGENTORCH_TLS_CERT: pki.server.cert }));
    expect(certOnly.variable).toBe("AGENTORCH_TLS_KEY");
    expect(certOnly.message).toBe("AGENTORCH_TLS_CERT is set but AGENTORCH_TLS_KEY is not: set both (a PEM certificate chain and its private key) or neither");
    expect(configError(() => loadConfig({ AGENTORCH_TLS_KEY: pki.server.key })).message).toContain("AGENTORCH_TLS_KEY is set but AGENTORCH_TLS_CERT is not");
    expect(configError(() => loadConfig({ AGENTORCH_TLS_CLIENT_CA: pki.ca.cert })).variable).toBe("AGENTORCH_TLS_CLIENT_CA");
    expect(configError(() => loadConfig({ ...tls, AGENTORCH_TLS_CLIENT_AUTH: "optional" })).message).toContain("AGENTORCH_TLS_CLIENT_CA is not");
    expect(configError(() => loadConfig({ ...tls, AGENTORCH_TLS_CLIENT_CA: pki.ca.cert, AGENTORCH_TLS_CLIENT_AUTH: "always" })).message).toBe(
      'AGENTORCH_TLS_CLIENT_AUTH must be require or optional (got "always")',
    );
    expect(configError(() => loadConfig({ ...tls, AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS: "5" })).variable).toBe("AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS");
  });

  it("refuses unreadable, unparsable and mismatched files at start, naming the variable", () => {
    const missing = path.join(pki.dir, "missing.pem");
    const notPem = path.join(pki.dir, "not.pem");
    writeFileSync(notPem, "hello\n");
    const garbled = path.join(pki.dir, "garbled.pem");
    writeFileSync(garbled, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    const encrypted = path.join(pki.dir, "encrypted.key");
    execFileSync("openssl", ["pkey", "-in", pki.server.key, "-aes256", "-passout", "pass:secret", "-out", encrypted]);
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ ...tls, AGENTORCH_TLS_CERT: missing }, "AGENTORCH_TLS_CERT", /AGENTORCH_TLS_CERT cannot be read: ENOENT/],
      [{ ...tls, AGENTORCH_TLS_KEY: missing }, "AGENTORCH_TLS_KEY", /AGENTORCH_TLS_KEY cannot be read: ENOENT/],
      [{ ...tls, AGENTORCH_TLS_CERT: notPem }, "AGENTORCH_TLS_CERT", /holds no PEM certificate/],
      [{ ...tls, AGENTORCH_TLS_CERT: garbled }, "AGENTORCH_TLS_CERT", /certificate 1 in .* does not parse/],
      [{ ...tls, AGENTORCH_TLS_KEY: notPem }, "AGENTORCH_TLS_KEY", /AGENTORCH_TLS_KEY is not a usable PEM private key/],
      [{ ...tls, AGENTORCH_TLS_KEY: encrypted }, "AGENTORCH_TLS_KEY", /it is encrypted; give agentorch an unencrypted key/],
      [{ ...tls, AGENTORCH_TLS_KEY: pki.serverRenewed.key }, "AGENTORCH_TLS_KEY", /is not the private key of the certificate in AGENTORCH_TLS_CERT .*subject \/CN=agentorch-test-server\)/],
      [{ ...tls, AGENTORCH_TLS_CLIENT_CA: notPem }, "AGENTORCH_TLS_CLIENT_CA", /AGENTORCH_TLS_CLIENT_CA holds no PEM certificate/],
      [{ ...tls, AGENTORCH_TLS_CLIENT_CA: missing }, "AGENTORCH_TLS_CLIENT_CA", /AGENTORCH_TLS_CLIENT_CA cannot be read: ENOENT/],
    ];
    for (const [env, variable, says] of cases) {
      const err = configError(() => loadConfig(env));
      expect(err.variable, says.source).toBe(variable);
      expect(err.message).toMatch(says);
    }
  });

  it("reads certificate identities beside tokens, and wants a client CA for them", () => {
    const hash = "ab".repeat(32);
    const creds = parseOperatorCredentials({ AGENTORCH_TOKENS: `ci-bot:operator:cert:/O=Acme/CN=ci-bot,ops:admin:${hash},v:viewer:cert:CN=viewer:x` });
    expect(creds.tokens).toEqual([{ name: "ops", role: "admin", hash }]);
    expect(creds.identities).toEqual([
      { name: "ci-bot", role: "operator", subject: { O: ["Acme"], CN: ["ci-bot"] } },
      { name: "v", role: "viewer", subject: { CN: ["viewer:x"] } },
    ]);
    for (const [value, says] of [
      ["a:operator:cert:", "ATTRIBUTE=VALUE"],
      ["a:operator:cert:/CN=", "ATTRIBUTE=VALUE"],
      ["a:operator:cert:CN=a/b", "ATTRIBUTE=VALUE"],
      ["a:boss:cert:CN=a", "the role must be one of"],
      ["a:operator:cert:/O=x/CN=a,b:viewer:cert:/cn=a/o=x", "the same certificate subject is listed twice"],
      [`a:operator:cert:CN=a,a:viewer:${hash}`, 'the name "a" is used twice'],
    ]) {
      expect(configError(() => parseOperatorCredentials({ AGENTORCH_TOKENS: value! })).message, value).toContain(says);
    }
    const noCa = configError(() => loadConfig({ AGENTORCH_TOKENS: "ci-bot:operator:cert:CN=ci-bot" }));
    expect(noCa.variable).toBe("AGENTORCH_TLS_CLIENT_CA");
    expect(noCa.message).toContain("certificate identities are configured (ci-bot) but AGENTORCH_TLS_CLIENT_CA is not set");
    expect(loadConfig({ ...tls, AGENTORCH_TLS_CLIENT_CA: pki.ca.cert, AGENTORCH_TOKENS: "ci-bot:operator:cert:CN=ci-bot" }).certIdentities).toHaveLength(1);
  });

  it("matches subjects on the attributes an identity lists", () => {
    const cert = { C: ["DE"], O: ["Acme"], OU: ["ops", "ci"], CN: ["ci-bot"] };
    expect(formatSubject(cert)).toBe("/C=DE/O=Acme/OU=ops/OU=ci/CN=ci-bot");
    expect(subjectMatches({ CN: ["ci-bot"] }, cert)).toBe(true);
    expect(subjectMatches({ cn: ["ci-bot"], O: ["Acme"], OU: ["ci"] }, cert)).toBe(true);
    expect(subjectMatches({ CN: ["ci-bot"], O: ["Other"] }, cert)).toBe(false);
    expect(subjectMatches({ CN: ["CI-BOT"] }, cert)).toBe(false);
    expect(subjectMatches({ L: ["Berlin"] }, cert)).toBe(false);
  });
});

describe("the listen rule beyond loopback", () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = makeTestPki();
  });
  afterAll(() => pki?.remove());
  const tokens = { AGENTORCH_TOKENS: `ops:operator:${"cd".repeat(32)}` };

  it("wants TLS, or AGENTORCH_INSECURE_LISTEN=1, besides credentials", () => {
    const tls = { AGENTORCH_TLS_CERT: pki.server.cert, AGENTORCH_TLS_KEY: pki.server.key };
    const noTls = configError(() => loadConfig({ ...tokens, AGENTORCH_LISTEN: "0.0.0.0:50051" }));
    expect(noTls.variable).toBe("AGENTORCH_LISTEN");
    expect(noTls.message).toMatch(/^AGENTORCH_LISTEN is 0\.0\.0\.0:50051, which is not a loopback address, and TLS is not configured: .*AGENTORCH_TLS_CERT and AGENTORCH_TLS_KEY.*AGENTORCH_INSECURE_LISTEN=1/);
    expect(configError(() => loadConfig({ ...tokens }, ["--listen", "[::]:80"])).message).toMatch(/^--listen is \[::\]:80, .*TLS is not configured/);
    expect(loadConfig({ ...tokens, ...tls, AGENTORCH_LISTEN: "0.0.0.0:50051" }).listen.host).toBe("0.0.0.0");
    expect(loadConfig({ ...tokens, AGENTORCH_INSECURE_LISTEN: "1", AGENTORCH_LISTEN: "0.0.0.0:50051" }).insecureListen).toBe(true);
    expect(configError(() => loadConfig({ ...tokens, AGENTORCH_INSECURE_LISTEN: "yes" })).message).toBe('AGENTORCH_INSECURE_LISTEN must be 1 or 0 (got "yes")');
    // Credentials first: TLS without them is not enough, and certificate identities count.
    expect(configError(() => loadConfig({ ...tls, AGENTORCH_LISTEN: "0.0.0.0:1" })).message).toMatch(/no operator tokens are configured/);
    const ids = { ...tls, AGENTORCH_TLS_CLIENT_CA: pki.ca.cert, AGENTORCH_TOKENS: "ci:operator:cert:CN=ci-bot" };
    expect(loadConfig({ ...ids, AGENTORCH_LISTEN: "0.0.0.0:1" }).listen.host).toBe("0.0.0.0");
    // The metrics port follows the same rule; loopback needs neither.
    expect(configError(() => loadConfig({ ...tokens, AGENTORCH_METRICS_LISTEN: "0.0.0.0:9464" })).variable).toBe("AGENTORCH_METRICS_LISTEN");
    expect(loadConfig({ AGENTORCH_LISTEN: "127.0.0.1:1" }).insecureListen).toBe(false);
  });
});
