export { nodeLifecycle } from './node-lifecycle';
export { bulkOperation } from './bulk-operation';
export { nodeMonitor } from './node-monitor';
export { powerSync } from './power-sync';
export { provisioner } from './provisioner';
export { discoverAddress } from './discover-address';
export { deploymentAnnealer } from './deployment-annealer';
