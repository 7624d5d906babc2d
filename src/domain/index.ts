export * from './states';
export * from './aggregate';
export * from './errors';
export * from './fields';
export * from './names';
export * from './messages';
export * from './transitions';
export * from './rollout';
