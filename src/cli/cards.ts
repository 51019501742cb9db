/**
 * `agentorch cards …`: the agents' A2A cards (what each agent says it can do), listed
 * and found by capability or skill (LifecycleService discovery).
 */
import { create } from "@bufbuild/protobuf";
import type { Command } from "commander";
import { AgentCardSchema } from "../../gen/agentorch/v1/a2a_pb.js";
import { AgentStatus } from "../../gen/agentorch/v1/agent_pb.js";
import { ListAgentCardsResponseSchema } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import { contextOf } from "./context.js";
import { resolveAgentId } from "./resolve.js";
import { absoluteAndRelative, enumName, paintState, printFields, printJson, printTable, relativeTime, truncate } from "./output.js";

/** Adds `cards` and its subcommands to the root. */
export function addCardsCommands(root: Command): void {
  const cards = root.command("cards").alias("card").description("agents' A2A cards: find agents by capability or skill");

  cards
    .command("ls")
    .alias("list")
    .description("list cards, ordered by agent id")
    .option("--capability <name>", "only cards listing this capability")
    .option("--skill <id-or-tag>", "only cards with a skill of this id or tag")
    .action(async (o: { capability?: string; skill?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const all = create(ListAgentCardsResponseSchema);
      let pageToken = "";
      do {
        const page = await ctx.clients.lifecycle.listAgentCards(
          { capability: o.capability ?? "", skill: o.skill ?? "", pageSize: 1000, pageToken },
          ctx.unary,
        );
        all.cards.push(...page.cards);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      if (ctx.json) return printJson(ListAgentCardsResponseSchema, all);
      if (all.cards.length === 0) {
        process.stdout.write(o.capability || o.skill ? "no matching cards\n" : "no cards: agents publish theirs with PublishAgentCard\n");
        return;
      }
      const now = Date.now();
      printTable(
        ["AGENT", "NAME", "STATUS", "CAPABILITIES", "SKILLS", "UPDATED"],
        all.cards.map((c) => [
          c.agentId,
          truncate(c.name, 30),
          paintState(enumName(AgentStatus, c.status)),
          truncate(c.capabilities.join(",") || "-", 40),
          truncate(c.skills.map((s) => s.id).join(",") || "-", 40),
          relativeTime(c.updatedAt, now),
        ]),
      );
    });

  cards
    .command("get")
    .alias("show")
    .description("show one agent's card")
    .argument("<agent-id>", "the agent whose card to show")
    .action(async (text: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const agentId = await resolveAgentId(ctx, text);
      const { card } = await ctx.clients.lifecycle.getAgentCard({ agentId }, ctx.unary);
      if (!card) throw new Error("the service answered without a card");
      if (ctx.json) return printJson(AgentCardSchema, card);
      printFields([
        ["Agent", card.agentId],
        ["Name", card.name],
        ["Status", paintState(enumName(AgentStatus, card.status))],
        ["Description", card.description || undefined],
        ["Capabilities", card.capabilities.join(", ") || "-"],
        ["Updated", absoluteAndRelative(card.updatedAt)],
        [
          "Skills",
          card.skills.length === 0
            ? "-"
            : card.skills
                .map((s) => `\n  ${s.id}${s.name && s.name !== s.id ? ` (${s.name})` : ""}${s.tags.length ? ` [${s.tags.join(", ")}]` : ""}${s.description ? `: ${s.description}` : ""}`)
                .join(""),
        ],
      ]);
    });
}
