export { AmqpBroker, createBroker, type AmqpBrokerOptions } from './amqp';
export { MemoryBroker, type DeadLetter, type MemoryBrokerOptions } from './memory';
export { AmqpSession, backoffDelayMs } from './session';
export { names as brokerNames, durableQueueOptions } from './topology';
export { upgradeQueues, type QueueUpgrade } from './upgrade';
export type {
  ConsumeResultsOptions,
  ConsumeTasksOptions,
  Delivery,
  Subscription,
  TaskBroker,
} from './types';
