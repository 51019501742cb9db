/**
 * The A2A part of the core's ports: durable cards and mailboxes. Like the Store, every
 * call is synchronous and one transaction, so the core can check and then write with no
 * other handler running in between (no await separates them).
 */
import type { AgentStatus } from "../agent.js";
import type { AgentCard } from "./card.js";
import type { NewMessage, StoredMessage } from "./message.js";

export interface CardQuery {
  /** Exclusive: cards whose agent id sorts after this one. */
  afterId?: string;
  limit: number;
  /** Only cards listing this capability. */
  capability?: string;
  /** Only cards with a skill whose id or one of whose tags equals this. */
  skill?: string;
}

/** Cards, one per agent id, ordered by agent id. */
export interface CardStore {
  getCard(agentId: string): AgentCard | undefined;
  /** Creates or replaces the card of card.agentId. */
  putCard(card: AgentCard): void;
  /** Sets the status when it differs; false when there is no card or nothing changed. */
  setCardStatus(agentId: string, status: AgentStatus, updatedAt: number): boolean;
  /** False when there was no card. */
  deleteCard(agentId: string): boolean;
  listCards(query: CardQuery): AgentCard[];
}

/** A mailbox's counters; all 0 for a mailbox that holds nothing yet. */
export interface MailboxState {
  /** The highest sequence ever given in this mailbox. */
  lastSequence: number;
  /** Every message up to this sequence is acknowledged. */
  ackedSequence: number;
  unackedCount: number;
  /** Sum of the sizes of the unacknowledged messages. */
  unackedBytes: number;
}

/** Mailboxes, one per agent id, with their messages in sequence order. */
export interface MailboxStore {
  state(agentId: string): MailboxState;
  /** What one sender has in a mailbox, unacknowledged (its count and the sum of its sizes). */
  senderState(agentId: string, sender: string): Pick<MailboxState, "unackedCount" | "unackedBytes">;
  /** Appends to message.toAgentId's mailbox with the next sequence (creating the mailbox). */
  append(message: NewMessage, messageId: string, sentAt: number): StoredMessage;
  /**
   * Unacknowledged messages with a sequence after afterSequence, in order: at most limit,
   * and no more once their sizes add up to maxBytes (but always at least one).
   */
  readUnacked(agentId: string, afterSequence: number, limit: number, maxBytes: number): StoredMessage[];
  /**
   * Acknowledges every message up to upToSequence (at most lastSequence, which the caller
   * checks). Returns how many were newly acknowledged; 0 when already acknowledged.
   */
  ack(agentId: string, upToSequence: number, ackedAt: number): number;
  /**
   * Deletes acknowledged messages acknowledged before ackedBefore, and, in each mailbox,
   * those beyond its newest keepPerMailbox acknowledged ones. At most limit rows per call.
   * Returns how many it deleted.
   */
  pruneAcked(ackedBefore: number, keepPerMailbox: number, limit: number): number;
  /** Deletes the mailbox and every message in it. Returns how many messages it held. */
  deleteMailbox(agentId: string): number;
  /** The agent ids that have a mailbox. */
  mailboxIds(): string[];
}
