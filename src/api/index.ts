export { createApp, type ApiDeps } from './app';
export { UNMATCHED_ROUTE, createMetricsApp } from './metrics';
export { parseCreateTaskBody, type BodyLimits, type CreateTaskBody } from './validate';
