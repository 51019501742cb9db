/**
 * Counting A2A messages without touching the mailbox service: a MailboxStore decorator
 * sees every message stored (sent) and every acknowledgement (processed) as committed,
 * and a wrapper of the mailbox API the handlers call sees every message a stream hands
 * to its reader (delivered).
 */
import type { Counter } from "prom-client";
import type { MailboxService } from "../core/a2a/mailbox-service.js";
import type { MailboxStore } from "../core/a2a/ports.js";

/** The mailbox operations the A2A handlers use (as src/api/a2a-handlers.ts takes them). */
export type MailboxesApi = Pick<MailboxService, "send" | "stream" | "ack" | "sendAndWait">;

/** The store, counting each message appended (sent) and each newly acknowledged one (processed). */
export function countMessages(store: MailboxStore, counters: { sent: Counter; processed: Counter }): MailboxStore {
  return {
    state: (agentId) => store.state(agentId),
    senderState: (agentId, sender) => store.senderState(agentId, sender),
    append(message, messageId, sentAt) {
      const stored = store.append(message, messageId, sentAt);
      counters.sent.inc();
      return stored;
    },
    readUnacked: (agentId, afterSequence, limit, maxBytes) => store.readUnacked(agentId, afterSequence, limit, maxBytes),
    ack(agentId, upToSequence, ackedAt) {
      const n = store.ack(agentId, upToSequence, ackedAt);
      if (n > 0) counters.processed.inc(n);
      return n;
    },
    pruneAcked: (ackedBefore, keepPerMailbox, limit) => store.pruneAcked(ackedBefore, keepPerMailbox, limit),
    deleteMailbox: (agentId) => store.deleteMailbox(agentId),
    mailboxIds: () => store.mailboxIds(),
  };
}

/** The mailbox API, counting each message a stream yields to its reader. */
export function countDeliveries(mailboxes: MailboxesApi, delivered: Counter): MailboxesApi {
  return {
    send: (input) => mailboxes.send(input),
    ack: (agentId, upTo) => mailboxes.ack(agentId, upTo),
    sendAndWait: (input, timeoutMs, signal) => mailboxes.sendAndWait(input, timeoutMs, signal),
    stream(agentId, resumeAfter, signal) {
      // Called now, so bad arguments still fail at once rather than at the first read.
      const source = mailboxes.stream(agentId, resumeAfter, signal);
      return (async function* () {
        for await (const item of source) {
          if (item.type === "message") delivered.inc();
          yield item;
        }
      })();
    },
  };
}
