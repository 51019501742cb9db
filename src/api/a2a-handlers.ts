/**
 * The A2A RPCs of LifecycleService (cards and mailboxes): a thin layer that maps the
 * request to the core's terms, calls CardService / MailboxService (passing the call's
 * signal to what waits), and maps the answer back. Codes are decided only in ./errors.ts.
 * src/api/lifecycle-service.ts merges these into the service.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { LifecycleService } from "../../gen/agentorch/v1/lifecycle_service_pb.js";
import type { CardService } from "../core/a2a/card-service.js";
import type { MailboxService } from "../core/a2a/mailbox-service.js";
import type { Logger } from "../core/ports.js";
import { cardFromProto, cardToProto, messageFromProto, messageToProto } from "./a2a-mapping.js";
import { durationToMs, int64ToNumber } from "./proto-scalars.js";
import { withErrors } from "./errors.js";

type A2AMethods = "publishAgentCard" | "getAgentCard" | "listAgentCards" | "sendMessage" | "streamMessages" | "ackMessages" | "sendAndWait";

/** The A2A handlers' part of LifecycleService. */
export type A2AHandlers = Pick<ServiceImpl<typeof LifecycleService>, A2AMethods>;

/** The parts of the core these handlers use, so tests can hand in fakes. */
export type CardsApi = Pick<CardService, "publish" | "get" | "list">;
export type MailboxesApi = Pick<MailboxService, "send" | "stream" | "ack" | "sendAndWait">;

/** Creates the A2A handlers over the core's card and mailbox services; errors already mapped. */
export function createA2AHandlers(deps: { cards: CardsApi; mailboxes: MailboxesApi; logger: Logger }): A2AHandlers {
  const { cards, mailboxes } = deps;
  const impl: A2AHandlers = {
    publishAgentCard(req) {
      return { card: cardToProto(cards.publish(cardFromProto(req.card))) };
    },
    getAgentCard(req) {
      return { card: cardToProto(cards.get(req.agentId)) };
    },
    listAgentCards(req) {
      const page = cards.list({ pageSize: req.pageSize, pageToken: req.pageToken, capability: req.capability, skill: req.skill });
      return { cards: page.cards.map(cardToProto), nextPageToken: page.nextPageToken };
    },
    sendMessage(req) {
      const sent = mailboxes.send(messageFromProto(req.message));
      return { messageId: sent.messageId, sequence: BigInt(sent.sequence) };
    },
    async *streamMessages(req, ctx) {
      const resumeAfter = int64ToNumber(req.resumeAfterSequence, "resume_after_sequence");
      for await (const item of mailboxes.stream(req.agentId, resumeAfter, ctx.signal)) {
        // A keep-alive is a response with no message (see StreamMessagesResponse).
        yield item.type === "message" ? { message: messageToProto(item.message) } : {};
      }
      // Ended by a cancel, a deadline or a shutdown: say so rather than end OK.
      ctx.signal.throwIfAborted();
    },
    ackMessages(req) {
      const n = mailboxes.ack(req.agentId, int64ToNumber(req.upToSequence, "up_to_sequence"));
      return { acknowledgedCount: BigInt(n) };
    },
    async sendAndWait(req, ctx) {
      const timeoutMs = req.timeout ? durationToMs(req.timeout, "timeout") : 0;
      const r = await mailboxes.sendAndWait(messageFromProto(req.message), timeoutMs, ctx.signal);
      return { messageId: r.messageId, sequence: BigInt(r.sequence), reply: messageToProto(r.reply) };
    },
  };
  return withErrors(LifecycleService, impl, deps.logger);
}
