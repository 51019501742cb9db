/** Operator tokens from AGENTORCH_TOKENS and AGENTORCH_TOKENS_FILE (read at start and on SIGHUP). */
import { readFileSync } from "node:fs";
import { ROLES } from "../core/auth.js";
import type { OperatorToken, Role } from "../core/auth.js";
import { ConfigError } from "./config-error.js";

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v.trim() === "" ? undefined : v.trim());

const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * Operator tokens from AGENTORCH_TOKENS ("name:role:sha256hex,…") and AGENTORCH_TOKENS_FILE
 * (one such entry a line; blank lines and lines starting with # are skipped). Names and
 * hashes must be unique. Error messages name the entry by position and never echo it:
 * it may hold a hash, or a raw token pasted by mistake.
 */
export function parseOperatorTokens(env: Record<string, string | undefined>): OperatorToken[] {
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
  for (const { variable, where, text } of entries) {
    const parts = text.split(":");
    const bad = (why: string) => new ConfigError(variable, `${where}: ${why}; each entry is NAME:ROLE:SHA256HEX, e.g. alice:admin:<64 hex digits>`);
    if (parts.length !== 3) throw bad("not three fields separated by ':'");
    const [name, role, hash] = parts as [string, string, string];
    if (!TOKEN_NAME.test(name)) throw bad("the name must be 1-64 letters, digits, '.', '_', '@' or '-'");
    if (!(ROLES as readonly string[]).includes(role)) throw bad(`the role must be one of ${ROLES.join(", ")}`);
    if (!SHA256_HEX.test(hash)) {
      throw bad('the third field must be the SHA-256 of the token in hex (printf %s "$TOKEN" | sha256sum), not the token itself');
    }
    if (tokens.some((t) => t.name === name)) throw bad(`the name "${name}" is used twice`);
    if (tokens.some((t) => t.hash === hash.toLowerCase())) throw bad("the same token hash is listed twice");
    tokens.push({ name, role: role as Role, hash: hash.toLowerCase() });
  }
  return tokens;
}
