/**
 * Ids as docker and kubectl users type them: wherever a command takes an agent or task id,
 * a unique prefix of one will do. The CLI lists the ids (paging through ListAgents or
 * ListTasks) and picks the one the text names: an exact id always wins; otherwise the
 * single id it starts. Several matches are a usage error (exit 2) that lists them; no
 * match leaves the text as typed, so the service answers NOT_FOUND (exit 3) in its words.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Ctx } from "./context.js";
import { usageError } from "./errors.js";

/** How many ambiguous matches the error names. */
const SHOWN = 5;

/** The id that text names among ids: exact match, else the one unique prefix match, else text. */
export function matchId(kind: string, text: string, ids: Iterable<string>): string {
  const matches: string[] = [];
  for (const id of ids) {
    if (id === text) return id;
    if (id.startsWith(text)) matches.push(id);
  }
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) return text;
  const shown = matches.slice(0, SHOWN).join(", ") + (matches.length > SHOWN ? `, … (${matches.length} in all)` : "");
  throw usageError(`${kind} id prefix "${text}" is ambiguous: it matches ${shown}; give more of the id`);
}

/** Reads every id the pages give; undefined when listing is not allowed (then ids are taken as typed). */
async function allIds(pages: (pageToken: string) => Promise<{ ids: string[]; next: string }>): Promise<string[] | undefined> {
  const ids: string[] = [];
  let pageToken = "";
  try {
    do {
      const page = await pages(pageToken);
      ids.push(...page.ids);
      pageToken = page.next;
    } while (pageToken !== "");
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.PermissionDenied) return undefined;
    throw err;
  }
  return ids;
}

/** The agent id that text (an id or a unique prefix) names. */
export async function resolveAgentId(ctx: Ctx, text: string): Promise<string> {
  if (text === "") return text;
  const ids = await allIds(async (pageToken) => {
    const page = await ctx.clients.agents.listAgents({ pageSize: 1000, pageToken }, ctx.unary);
    return { ids: page.agents.map((a) => a.agentId), next: page.nextPageToken };
  });
  return ids === undefined ? text : matchId("agent", text, ids);
}

/** The task id that text (an id or a unique prefix) names. */
export async function resolveTaskId(ctx: Ctx, text: string): Promise<string> {
  if (text === "") return text;
  const ids = await allIds(async (pageToken) => {
    const page = await ctx.clients.lifecycle.listTasks({ pageSize: 1000, pageToken }, ctx.unary);
    return { ids: page.tasks.map((t) => t.taskId), next: page.nextPageToken };
  });
  return ids === undefined ? text : matchId("task", text, ids);
}
