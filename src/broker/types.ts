/**
 * The broker seam: everything tasker needs from a message broker, and nothing more. The AMQP
 * implementation (amqp.ts) is the production one; an in-process one can back an embedded mode.
 */
import type { ChangeEvent, ControlMessage, Heartbeat, ResultEvent, TaskMessage } from '../domain';

export interface Delivery {
  readonly content: Buffer;
  /** the broker says this message was delivered before (to this or another consumer) */
  readonly redelivered: boolean;
  /** the message's own id, set by the publisher */
  readonly messageId: string | null;
  /** the broker-validated user that published it, when the publisher set one */
  readonly userId: string | null;
  ack(): void;
  /** give the message back for redelivery */
  requeue(): void;
  /** refuse it for good: it goes to the dead-letter queue */
  deadLetter(): void;
}

export interface Subscription {
  /** stop receiving new messages; those already received can still be settled */
  cancel(): Promise<void>;
  /** cancel and close the channel; unsettled messages go back to the queue */
  close(): Promise<void>;
}

export interface ConsumeTasksOptions {
  endpoint: string;
  types: string[];
  prefetch: number;
}

export interface ConsumeResultsOptions {
  prefetch: number;
  /** hand over at most this many deliveries at once */
  batchSize: number;
  /** wait at most this long for a batch to fill */
  lingerMs: number;
}

export interface TaskBroker {
  readonly isConnected: boolean;
  /**
   * Whether the broker answers a round trip within `timeoutMs`: an open connection to a frozen
   * broker is connected but does not answer.
   */
  ping(timeoutMs: number): Promise<boolean>;
  /**
   * Publish a task to its type's exchange and resolve once the broker confirmed it. Declares
   * the queues of the addressed endpoints first, so one that never connected still finds it.
   */
  publishTask(message: TaskMessage): Promise<void>;
  /**
   * Publish a control message (a cancel) to every agent of its task type, and resolve once the
   * broker confirmed it; it expires with the task message it is about.
   */
  publishControl(message: ControlMessage): Promise<void>;
  /** Publish a result event and resolve once the broker confirmed it. */
  publishResult(event: ResultEvent): Promise<void>;
  /**
   * Publish events of one endpoint as one message (an array; a single event goes as itself)
   * and resolve once the broker confirmed it.
   */
  publishResults(events: readonly ResultEvent[]): Promise<void>;
  /**
   * Publish an agent's heartbeat to the results exchange, where the recorder takes it, and
   * resolve once the broker confirmed it. A hello or beat expires unread after its interval (a
   * newer one says more); a goodbye waits for the recorder.
   */
  publishHeartbeat(heartbeat: Heartbeat): Promise<void>;
  /**
   * Consume this endpoint's queues for the given task types, one delivery at a time each, and
   * its control queue, whose deliveries go to `onControl` (they are acked there).
   */
  consumeTasks(
    options: ConsumeTasksOptions,
    onTask: (delivery: Delivery) => Promise<void>,
    onControl?: (delivery: Delivery) => void,
  ): Promise<Subscription>;
  /**
   * How many tasks wait in this endpoint's queues of these types, not yet delivered to any
   * consumer (RabbitMQ's ready count): what `tasker agent --burst` waits to see at 0.
   */
  waitingTasks(endpoint: string, types: readonly string[]): Promise<number>;
  /**
   * Publish a change of a task to the events exchange (routing key `<type>.<status>`), once it
   * is committed; resolves once the broker confirmed it.
   */
  publishChange(event: ChangeEvent): Promise<void>;
  /**
   * Receive every change event published from now on (a queue of this process's own, gone with
   * it): how a server learns of changes other servers made.
   */
  consumeChanges(onChange: (event: ChangeEvent) => void): Promise<Subscription>;
  /** Consume result events from every endpoint, in batches. */
  consumeResults(
    options: ConsumeResultsOptions,
    onBatch: (deliveries: Delivery[]) => Promise<void>,
  ): Promise<Subscription>;
  close(): Promise<void>;
}
