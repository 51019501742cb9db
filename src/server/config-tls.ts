/**
 * TLS on the service's TCP port: which files hold the certificate, its key and the CA of
 * client certificates (AGENTORCH_TLS_*), read and checked at start-up and again on SIGHUP,
 * so that a missing file, a key that belongs to another certificate or a PEM that does not
 * parse fails the start with a message naming the variable, not the first handshake.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { ConfigError } from "./config-error.js";

/** Whether client certificates are asked for, and whether a call needs one. */
export type ClientAuth = "require" | "optional" | "off";

/** Where the TLS material is (files are read by loadTlsMaterial). */
export interface TlsSettings {
  /** PEM certificate chain, leaf first (AGENTORCH_TLS_CERT). */
  certFile: string;
  /** PEM private key of the leaf (AGENTORCH_TLS_KEY). */
  keyFile: string;
  /** PEM CA certificates that issue client certificates (AGENTORCH_TLS_CLIENT_CA); unset: none asked for. */
  clientCaFile?: string;
  /**
   * With a client CA: `require` (every call but health and reflection needs a valid client
   * certificate) or `optional` (token-only clients too; a certificate presented must be
   * valid). `off` without a client CA.
   */
  clientAuth: ClientAuth;
  /** A connection must finish its TLS handshake within this (AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs: number;
}

/** The files' contents, checked; what a secure context is made of. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** For logs: the leaf's subject, SANs, expiry and SHA-256 fingerprint. */
  summary: { subject: string; subjectAltName: string; validTo: string; fingerprint256: string; expired: boolean };
}

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v.trim() === "" ? undefined : v.trim());

/** AGENTORCH_TLS_CERT, _KEY, _CLIENT_CA, _CLIENT_AUTH, _HANDSHAKE_TIMEOUT_MS; undefined: no TLS. Files are not read here. */
export function parseTlsSettings(env: Record<string, string | undefined>): TlsSettings | undefined {
  const certFile = nonEmpty(env.AGENTORCH_TLS_CERT);
  const keyFile = nonEmpty(env.AGENTORCH_TLS_KEY);
  const clientCaFile = nonEmpty(env.AGENTORCH_TLS_CLIENT_CA);
  const clientAuthText = nonEmpty(env.AGENTORCH_TLS_CLIENT_AUTH);
  if (certFile === undefined && keyFile === undefined) {
    for (const name of ["AGENTORCH_TLS_CLIENT_CA", "AGENTORCH_TLS_CLIENT_AUTH"] as const) {
      if (nonEmpty(env[name]) !== undefined) {
        throw new ConfigError(name, `${name} is set but TLS is not: client certificates need AGENTORCH_TLS_CERT and AGENTORCH_TLS_KEY too`);
      }
    }
    return undefined;
  }
  if (certFile === undefined || keyFile === undefined) {
    const [set, unset] = certFile === undefined ? ["AGENTORCH_TLS_KEY", "AGENTORCH_TLS_CERT"] : ["AGENTORCH_TLS_CERT", "AGENTORCH_TLS_KEY"];
    throw new ConfigError(unset, `${set} is set but ${unset} is not: set both (a PEM certificate chain and its private key) or neither`);
  }
  let clientAuth: ClientAuth = clientCaFile === undefined ? "off" : "require";
  if (clientAuthText !== undefined) {
    if (clientAuthText !== "require" && clientAuthText !== "optional") {
      throw new ConfigError("AGENTORCH_TLS_CLIENT_AUTH", `AGENTORCH_TLS_CLIENT_AUTH must be require or optional (got "${clientAuthText}")`);
    }
    if (clientCaFile === undefined) {
      throw new ConfigError("AGENTORCH_TLS_CLIENT_AUTH", "AGENTORCH_TLS_CLIENT_AUTH is set but AGENTORCH_TLS_CLIENT_CA is not: name the CA that issues client certificates");
    }
    clientAuth = clientAuthText;
  }
  const timeoutText = nonEmpty(env.AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS);
  const handshakeTimeoutMs = timeoutText === undefined ? 10_000 : Number(timeoutText);
  if (!/^\d+$/.test(timeoutText ?? "0") || handshakeTimeoutMs < 100 || handshakeTimeoutMs > 600_000) {
    throw new ConfigError("AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS", `AGENTORCH_TLS_HANDSHAKE_TIMEOUT_MS must be an integer from 100 to 600000 (got "${timeoutText}")`);
  }
  return { certFile, keyFile, ...(clientCaFile !== undefined ? { clientCaFile } : {}), clientAuth, handshakeTimeoutMs };
}

/** AGENTORCH_INSECURE_LISTEN: "1" allows a non-loopback address without TLS. */
export function parseInsecureListen(env: Record<string, string | undefined>): boolean {
  const text = nonEmpty(env.AGENTORCH_INSECURE_LISTEN);
  if (text === undefined || text === "0") return false;
  if (text === "1") return true;
  throw new ConfigError("AGENTORCH_INSECURE_LISTEN", `AGENTORCH_INSECURE_LISTEN must be 1 or 0 (got "${text}")`);
}

function readPem(name: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(name, `${name} cannot be read: ${code} (got "${file}")`);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function parseCerts(name: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString("latin1").match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new ConfigError(name, `${name} holds no PEM certificate (-----BEGIN CERTIFICATE-----) (got "${file}")`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(name, `${name}: certificate ${i + 1} in "${file}" does not parse: ${(err as Error).message}`);
    }
  });
}

/**
 * Reads and checks the files: PEM certificates that parse, an unencrypted private key that
 * belongs to the first certificate, a CA file of certificates; then makes a secure context
 * from them once, so that what OpenSSL would refuse is refused here. Throws ConfigError.
 */
export function loadTlsMaterial(settings: TlsSettings): TlsMaterial {
  const cert = readPem("AGENTORCH_TLS_CERT", settings.certFile);
  const key = readPem("AGENTORCH_TLS_KEY", settings.keyFile);
  const ca = settings.clientCaFile === undefined ? undefined : readPem("AGENTORCH_TLS_CLIENT_CA", settings.clientCaFile);
  const [leaf] = parseCerts("AGENTORCH_TLS_CERT", settings.certFile, cert) as [X509Certificate];
  let privateKey: KeyObject;
  try {
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(key.toString("latin1"))) throw new Error("encrypted");
    privateKey = createPrivateKey(key);
  } catch (err) {
    const text = (err as Error).message;
    const why = text === "encrypted" ? "it is encrypted; give agentorch an unencrypted key (openssl pkey -in KEY -out KEY.plain)" : text;
    throw new ConfigError("AGENTORCH_TLS_KEY", `AGENTORCH_TLS_KEY is not a usable PEM private key: ${why} (got "${settings.keyFile}")`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      "AGENTORCH_TLS_KEY",
      `AGENTORCH_TLS_KEY ("${settings.keyFile}") is not the private key of the certificate in AGENTORCH_TLS_CERT ("${settings.certFile}", subject ${oneLine(leaf.subject)})`,
    );
  }
  if (ca !== undefined) parseCerts("AGENTORCH_TLS_CLIENT_CA", settings.clientCaFile!, ca);
  try {
    tls.createSecureContext({ cert, key, ...(ca !== undefined ? { ca } : {}) });
  } catch (err) {
    throw new ConfigError("AGENTORCH_TLS_CERT", `the TLS files cannot be used together: ${(err as Error).message}`);
  }
  const summary = {
    subject: oneLine(leaf.subject),
    subjectAltName: leaf.subjectAltName ?? "",
    validTo: new Date(leaf.validTo).toISOString(),
    fingerprint256: leaf.fingerprint256,
    expired: new Date(leaf.validTo).getTime() < Date.now(),
  };
  return { cert, key, ...(ca !== undefined ? { ca } : {}), summary };
}

/** "C=US\nCN=x" -> "/C=US/CN=x". */
function oneLine(subject: string): string {
  return subject
    .split("\n")
    .filter((s) => s !== "")
    .map((s) => `/${s}`)
    .join("");
}

/** Options for tls.Server / setSecureContext from the material and the client-auth mode. */
export function secureContextOptions(material: TlsMaterial): tls.SecureContextOptions {
  return { cert: material.cert, key: material.key, ...(material.ca !== undefined ? { ca: material.ca } : {}) };
}

/**
 * Certificate identities (NAME:ROLE:cert:SUBJECT) mean nothing unless client certificates
 * are verified: refuses them without AGENTORCH_TLS_CLIENT_CA rather than ignore them.
 */
export function checkIdentitiesUsable(identities: readonly { name: string }[], settings: TlsSettings | undefined): void {
  if (identities.length === 0 || settings?.clientCaFile !== undefined) return;
  throw new ConfigError(
    "AGENTORCH_TLS_CLIENT_CA",
    `certificate identities are configured (${identities.map((i) => i.name).join(", ")}) but AGENTORCH_TLS_CLIENT_CA is not set: ` +
      "no client certificate is asked for or verified; set AGENTORCH_TLS_CERT, AGENTORCH_TLS_KEY and AGENTORCH_TLS_CLIENT_CA, or remove the cert entries",
  );
}
