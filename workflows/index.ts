export { nodeLifecycle } from './node-lifecycle';
