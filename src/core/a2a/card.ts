/**
 * A2A agent cards in the core's own terms, and the validation of a card as a client
 * publishes it. Everything wrong is INVALID_ARGUMENT naming the field; the only thing
 * dropped silently is a duplicate capability (the proto says so).
 */
import type { AgentStatus } from "../agent.js";
import { checkString, validateAgentId } from "../agent-config.js";
import { invalidArgument } from "../errors.js";

/** One thing an agent offers, for discovery. */
export interface Skill {
  id: string;
  name: string;
  description: string;
  tags: string[];
}

/** A card as stored. updatedAt is epoch ms: the last publish, capability gain or status change. */
export interface AgentCard {
  agentId: string;
  name: string;
  description: string;
  capabilities: string[];
  skills: Skill[];
  /** Always the agent's status (kept in step by CardService). */
  status: AgentStatus;
  updatedAt: number;
}

/** A card as a client sends it; status and updatedAt are the service's. */
export interface CardInput {
  agentId: string;
  name?: string;
  description?: string;
  capabilities?: string[];
  skills?: Partial<Skill>[];
}

export const CARD_LIMITS = {
  nameLength: 256,
  descriptionLength: 4096,
  capabilities: 64,
  skills: 64,
  tags: 32,
  /** Capability ids, skill ids and tags. */
  idLength: 64,
} as const;

// Capabilities and skill ids are matched exactly by ListAgentCards: keep them to simple ids.
const SIMPLE_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
// Tab, LF and CR are text; every other C0/C1 control and lone surrogates are refused.
// eslint-disable-next-line no-control-regex
const BAD_TEXT_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]|\p{Cs}/u;

/** Throws INVALID_ARGUMENT unless s is 1-64 ASCII letters, digits, '-', '_' or '.'. */
export function validateSimpleId(s: string, field: string): string {
  if (typeof s !== "string" || !SIMPLE_ID_RE.test(s)) {
    throw invalidArgument(`${field} must be 1-${CARD_LIMITS.idLength} ASCII letters, digits, '-', '_' or '.' (got ${JSON.stringify(String(s).slice(0, 80))})`, {
      field,
    });
  }
  return s;
}

/** Free text of at most max characters: newlines allowed, other control characters not. */
export function checkText(value: string | undefined, field: string, max: number): string {
  const v = value ?? "";
  checkString(v, field, max, { allowEmpty: true, allowNewlines: true });
  if (BAD_TEXT_RE.test(v)) throw invalidArgument(`${field} contains control characters`, { field });
  return v;
}

/** A one-line name of at most 256 characters; may be empty. */
export function checkName(value: string | undefined, field: string): string {
  const v = value ?? "";
  checkString(v, field, CARD_LIMITS.nameLength, { allowEmpty: true });
  if (BAD_TEXT_RE.test(v)) throw invalidArgument(`${field} contains control characters`, { field });
  return v;
}

/** A list of capabilities: at most 64 simple ids; duplicates dropped, order kept. */
export function validateCapabilities(list: string[] | undefined, field: string): string[] {
  const items = list ?? [];
  if (!Array.isArray(items)) throw invalidArgument(`${field} must be a list of strings`, { field });
  if (items.length > CARD_LIMITS.capabilities) {
    throw invalidArgument(`${field} has ${items.length} entries; at most ${CARD_LIMITS.capabilities}`, { field });
  }
  items.forEach((c, i) => validateSimpleId(c, `${field}[${i}]`));
  return [...new Set(items)];
}

/** The card to store, minus status and updatedAt; name is "" when none was given (the service fills in the agent's). */
export function validateCardInput(input: CardInput | undefined): Omit<AgentCard, "status" | "updatedAt"> {
  if (input === undefined || input === null || typeof input !== "object") throw invalidArgument("card is required", { field: "card" });
  const agentId = validateAgentId(input.agentId, "card.agent_id");
  const name = checkName(input.name, "card.name");
  const description = checkText(input.description, "card.description", CARD_LIMITS.descriptionLength);
  const capabilities = validateCapabilities(input.capabilities, "card.capabilities");
  const skillsIn = input.skills ?? [];
  if (skillsIn.length > CARD_LIMITS.skills) {
    throw invalidArgument(`card.skills has ${skillsIn.length} entries; at most ${CARD_LIMITS.skills}`, { field: "card.skills" });
  }
  const seen = new Set<string>();
  const skills = skillsIn.map((s, i) => {
    const field = `card.skills[${i}]`;
    const id = validateSimpleId(s.id ?? "", `${field}.id`);
    if (seen.has(id)) throw invalidArgument(`${field}.id "${id}" is not unique within the card`, { field: `${field}.id` });
    seen.add(id);
    const tags = s.tags ?? [];
    if (tags.length > CARD_LIMITS.tags) throw invalidArgument(`${field}.tags has ${tags.length} entries; at most ${CARD_LIMITS.tags}`, { field: `${field}.tags` });
    tags.forEach((t, j) => checkString(t, `${field}.tags[${j}]`, CARD_LIMITS.idLength));
    return {
      id,
      name: checkName(s.name, `${field}.name`),
      description: checkText(s.description, `${field}.description`, CARD_LIMITS.descriptionLength),
      tags: [...tags],
    };
  });
  return { agentId, name, description, capabilities, skills };
}
