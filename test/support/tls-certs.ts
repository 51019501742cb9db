/**
 * Certificates made with openssl for TLS tests, in a temporary directory: a CA, server
 * certificates for 127.0.0.1 and localhost, and client certificates (good ones, an expired
 * one, one from another CA). Each is a pair of PEM files; `read` gives their contents for
 * clients that take buffers (grpc-js, node:tls).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** A certificate and its key, as files. */
export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The CA that issues the server's and the good clients' certificates. */
  ca: CertFiles;
  /** Another CA: the service does not trust it, and a client that trusts only it refuses the server. */
  otherCa: CertFiles;
  /** SAN IP:127.0.0.1, DNS:localhost; CN=agentorch-test-server. */
  server: CertFiles;
  /** The same names, another key: what a certificate renewal hands over (CN=agentorch-test-server-renewed). */
  serverRenewed: CertFiles;
  /** Issues a client certificate for a subject ("/O=Acme/CN=ci-bot"); `expired` makes one whose validity ended, `issuer` another CA. */
  client(name: string, subject: string, opts?: { expired?: boolean; issuer?: CertFiles }): CertFiles;
  /** A file's contents. */
  read(file: string): Buffer;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function newCa(dir: string, name: string, cn: string): CertFiles {
  const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", files.key, "-out", files.cert, "-days", "3", "-subj", `/CN=${cn}`], dir);
  return files;
}

function issue(dir: string, name: string, subject: string, issuer: CertFiles, ext: string, days: number): CertFiles {
  const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const extFile = path.join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", files.key, "-out", csr, "-subj", subject], dir);
  // -days -1: valid from now until a day ago, i.e. expired (OpenSSL 3.0 has no -not_before).
  openssl(["x509", "-req", "-in", csr, "-CA", issuer.cert, "-CAkey", issuer.key, "-CAcreateserial", "-out", files.cert, "-days", String(days), "-extfile", extFile], dir);
  return files;
}

/** Makes the CAs and server certificates (about a second with openssl). */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), "agentorch-pki-"));
  const ca = newCa(dir, "ca", "agentorch test CA");
  const otherCa = newCa(dir, "other-ca", "some other CA");
  const serverExt = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
  const server = issue(dir, "server", "/CN=agentorch-test-server", ca, serverExt, 3);
  const serverRenewed = issue(dir, "server-renewed", "/CN=agentorch-test-server-renewed", ca, serverExt, 3);
  return {
    dir,
    ca,
    otherCa,
    server,
    serverRenewed,
    client: (name, subject, opts = {}) => issue(dir, name, subject, opts.issuer ?? ca, "extendedKeyUsage=clientAuth\n", opts.expired ? -1 : 3),
    read: (file) => readFileSync(file),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
