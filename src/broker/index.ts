export { AmqpBroker, createBroker, type AmqpBrokerOptions } from './amqp';
export { AmqpSession, backoffDelayMs } from './session';
export { names as brokerNames, durableQueueOptions } from './topology';
export type {
  ConsumeResultsOptions,
  ConsumeTasksOptions,
  Delivery,
  Subscription,
  TaskBroker,
} from './types';
