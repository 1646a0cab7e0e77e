import { allHandlersFinished, condition, continueAsNew, log, proxyLocalActivities, setHandler, uuid4, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  acceptUpdate,
  DATABASE_ACTIVITY_OPTIONS,
  powerUpdate,
  provisionUpdate,
  groupDecisionSignal,
  operationsQueuedSignal,
  slotGrantedSignal,
  readySignal,
  reinitializeSignal,
  reinitializeUpdate,
  statusQuery,
  type NodeLifecycleInput,
} from './definitions';
import { NodeEntity } from './node-entity';
import { ProvisionRunner } from './node-provisioning';
import { OperationRunner } from './node-operations';

const powerTasks = proxyLocalActivities<Activities>(DATABASE_ACTIVITY_OPTIONS);

/** One long-lived workflow per node (id node:<hostname>); the state and its rules live in NodeEntity. */
export async function nodeLifecycle(input: NodeLifecycleInput): Promise<void> {
  const node = new NodeEntity(input.hostname, input.settings, input.carried);

  setHandler(statusQuery, () => node.status());
  setHandler(acceptUpdate, ({ taskId, fingerprint }) => node.command('accept', taskId, 'accepted by operator', fingerprint), {
    validator: (_request: { taskId: string; fingerprint: string }) => node.validate('accept'),
  });
  setHandler(reinitializeUpdate, ({ taskId }) => node.command('reinitialize', taskId, 'reinitialize requested through the API'), {
    validator: (_request: { taskId: string }) => node.validate('reinitialize'),
  });
  setHandler(reinitializeSignal, async () => {
    try {
      await node.command('reinitialize', uuid4(), 'reinitialize signal');
    } catch (err) {
      // A signal has nobody to answer: a refused one is logged, never allowed to fail the workflow.
      log.warn('reinitialize signal ignored', { hostname: node.hostname, reason: (err as Error).message });
    }
  });
  setHandler(readySignal, () => node.onReady());
  setHandler(provisionUpdate, ({ taskId, verb }) => node.provision(verb, taskId), {
    validator: ({ verb }: { taskId: string; verb: 'manage' | 'adopt' }) => node.validate(verb),
  });
  const provisioning = new ProvisionRunner(node);
  setHandler(
    powerUpdate,
    async ({ taskId, target }) => {
      node.validatePower();
      node.pendingPower = { taskId, target };
      await powerTasks.startTask({ id: taskId, kind: 'power', hostname: node.hostname });
      return { task_id: taskId, state: node.state };
    },
    { validator: (_request: { taskId: string; target: 'power on' | 'power off' | 'rebooting' }) => node.validatePower() },
  );

  const operations = new OperationRunner(node, input.settings.operationTimeoutMs ?? 15 * 60_000);
  setHandler(operationsQueuedSignal, () => {
    node.operationsQueued = true;
  });
  setHandler(slotGrantedSignal, () => operations.onSlotGranted());
  setHandler(groupDecisionSignal, ({ taskId, decision }) => operations.onDecision(taskId, decision));

  for (;;) {
    await condition(
      () =>
        node.pendingInit !== null ||
        node.operationsQueued ||
        node.pendingProvision !== null ||
        node.pendingPower !== null ||
        (node.idle && workflowInfo().continueAsNewSuggested),
    );
    if (node.pendingInit !== null) {
      await node.initialize();
      continue;
    }
    if (node.pendingProvision !== null) {
      await provisioning.run();
      continue;
    }
    if (node.pendingPower !== null) {
      await provisioning.power();
      continue;
    }
    if (node.operationsQueued) {
      node.operationsQueued = false;
      await operations.drain();
      continue;
    }
    await condition(allHandlersFinished);
    await continueAsNew<typeof nodeLifecycle>({ ...input, carried: node.carry() });
  }
}
