/**
 * Operator credentials from AGENTORCH_TOKENS and AGENTORCH_TOKENS_FILE (read at start and on
 * SIGHUP): bearer tokens (NAME:ROLE:SHA256HEX) and client certificate identities
 * (NAME:ROLE:cert:SUBJECT, e.g. ci-bot:operator:cert:/O=Acme/CN=ci-bot).
 */
import { readFileSync } from "node:fs";
import { formatSubject, ROLES } from "../core/auth.js";
import type { CertIdentity, CertSubject, OperatorToken, Role } from "../core/auth.js";
import { ConfigError } from "./config-error.js";

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v.trim() === "" ? undefined : v.trim());

const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/** The operator tokens alone (see parseOperatorCredentials). */
export function parseOperatorTokens(env: Record<string, string | undefined>): OperatorToken[] {
  return parseOperatorCredentials(env).tokens;
}

/** Every operator credential the configuration names. */
export interface OperatorCredentials {
  tokens: OperatorToken[];
  /** Client certificate identities (mutual TLS; they need AGENTORCH_TLS_CLIENT_CA). */
  identities: CertIdentity[];
}

const ATTRIBUTE = /^[A-Za-z][A-Za-z0-9.]{0,63}$/;

/**
 * Operator credentials from AGENTORCH_TOKENS ("name:role:sha256hex,…") and
 * AGENTORCH_TOKENS_FILE (one entry a line; blank lines and lines starting with # are
 * skipped). An entry NAME:ROLE:cert:SUBJECT is a certificate identity: SUBJECT lists
 * attributes as `openssl req -subj` writes them (/O=Acme/CN=ci-bot; the leading / may be
 * left out), all of which a verified client certificate's subject must have. Names,
 * hashes and subjects must be unique. Error messages name the entry by position and never
 * echo it: it may hold a hash, or a raw token pasted by mistake.
 */
export function parseOperatorCredentials(env: Record<string, string | undefined>): OperatorCredentials {
  const entries: { where: string; variable: string; text: string }[] = [];
  const inline = nonEmpty(env.AGENTORCH_TOKENS);
  if (inline !== undefined) {
    inline.split(",").forEach((text, i) => {
      if (text.trim() !== "") entries.push({ variable: "AGENTORCH_TOKENS", where: `AGENTORCH_TOKENS entry ${i + 1}`, text: text.trim() });
    });
  }
  const file = nonEmpty(env.AGENTORCH_TOKENS_FILE);
  if (file !== undefined) {
    let content: string;
    try {
      content = readFileSync(file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ConfigError("AGENTORCH_TOKENS_FILE", `AGENTORCH_TOKENS_FILE cannot be read: ${code} (got "${file}")`);
    }
    content.split(/\r?\n/).forEach((line, i) => {
      const text = line.trim();
      if (text !== "" && !text.startsWith("#")) entries.push({ variable: "AGENTORCH_TOKENS_FILE", where: `AGENTORCH_TOKENS_FILE ${file} line ${i + 1}`, text });
    });
  }
  const tokens: OperatorToken[] = [];
  const identities: CertIdentity[] = [];
  for (const { variable, where, text } of entries) {
    const parts = text.split(":");
    const bad = (why: string) =>
      new ConfigError(variable, `${where}: ${why}; each entry is NAME:ROLE:SHA256HEX (e.g. alice:admin:<64 hex digits>) or NAME:ROLE:cert:SUBJECT (e.g. ci-bot:operator:cert:/CN=ci-bot)`);
    const isCert = parts.length >= 4 && parts[2] === "cert";
    if (parts.length !== 3 && !isCert) throw bad("not three fields separated by ':'");
    const [name, role, hash] = parts as [string, string, string];
    if (!TOKEN_NAME.test(name)) throw bad("the name must be 1-64 letters, digits, '.', '_', '@' or '-'");
    if (!(ROLES as readonly string[]).includes(role)) throw bad(`the role must be one of ${ROLES.join(", ")}`);
    if (tokens.some((t) => t.name === name) || identities.some((t) => t.name === name)) throw bad(`the name "${name}" is used twice`);
    if (isCert) {
      const subject = parseSubject(parts.slice(3).join(":"), bad);
      const key = canonicalSubject(subject);
      if (identities.some((t) => canonicalSubject(t.subject) === key)) throw bad("the same certificate subject is listed twice");
      identities.push({ name, role: role as Role, subject });
      continue;
    }
    if (!SHA256_HEX.test(hash)) {
      throw bad('the third field must be the SHA-256 of the token in hex (printf %s "$TOKEN" | sha256sum), not the token itself');
    }
    if (tokens.some((t) => t.hash === hash.toLowerCase())) throw bad("the same token hash is listed twice");
    tokens.push({ name, role: role as Role, hash: hash.toLowerCase() });
  }
  return { tokens, identities };
}

/** "/O=Acme/CN=ci-bot" or "CN=ci-bot" -> { O: ["Acme"], CN: ["ci-bot"] }. */
function parseSubject(text: string, bad: (why: string) => ConfigError): CertSubject {
  const subject: Record<string, string[]> = {};
  const rdns = (text.startsWith("/") ? text.slice(1) : text).split("/");
  for (const rdn of rdns) {
    const eq = rdn.indexOf("=");
    const attr = rdn.slice(0, eq).trim();
    const value = rdn.slice(eq + 1).trim();
    if (eq <= 0 || !ATTRIBUTE.test(attr) || value === "") {
      throw bad("a certificate subject is ATTRIBUTE=VALUE pairs each after a '/', e.g. /O=Acme/CN=ci-bot (values may not contain '/')");
    }
    (subject[attr] ??= []).push(value);
  }
  return subject;
}

/** One spelling per subject, to find the same one listed twice. */
function canonicalSubject(subject: CertSubject): string {
  const upper: Record<string, string[]> = {};
  for (const [attr, values] of Object.entries(subject)) upper[attr.toUpperCase()] = [...values].sort();
  return formatSubject(Object.fromEntries(Object.entries(upper).sort(([a], [b]) => a.localeCompare(b))));
}
