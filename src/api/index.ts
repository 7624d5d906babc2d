export { createApp, type ApiDeps } from './app';
export { parseCreateTaskBody, type BodyLimits, type CreateTaskBody } from './validate';
