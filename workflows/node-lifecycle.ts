import { allHandlersFinished, condition, continueAsNew, log, setHandler, uuid4, workflowInfo } from '@temporalio/workflow';
import {
  abortInstallUpdate,
  acceptRequestSignal,
  acceptUpdate,
  installEventSignal,
  groupDecisionSignal,
  operationsQueuedSignal,
  powerDriftSignal,
  powerUpdate,
  provisionUpdate,
  readySignal,
  reinitializeSignal,
  reinitializeUpdate,
  slotGrantedSignal,
  statusQuery,
  type NodeLifecycleInput,
} from './definitions';
import { NodeEntity } from './node-entity';
import { DEFAULT_DEPLOY_SETTINGS } from './node-install';
import { OperationRunner } from './node-operations';
import { PowerRunner } from './node-power';
import { ProvisionRunner } from './node-provisioning';

/** One long-lived workflow per node (id node:<hostname>); the state and its rules live in NodeEntity. */
export async function nodeLifecycle(input: NodeLifecycleInput): Promise<void> {
  const node = new NodeEntity(input.hostname, input.settings, input.carried);
  const provisioning = new ProvisionRunner(node);
  const power = new PowerRunner(node);
  const operations = new OperationRunner(node, input.settings.operationTimeoutMs ?? 15 * 60_000, input.settings.deploy ?? DEFAULT_DEPLOY_SETTINGS);

  setHandler(statusQuery, () => node.status());
  setHandler(
    acceptUpdate,
    ({ taskId, fingerprint, cause, expiresAt }) =>
      node.command('accept', taskId, cause ?? 'accepted by operator', { requireFingerprint: fingerprint, expiresAt }),
    { validator: ({ expiresAt }) => node.validate('accept', expiresAt) },
  );
  setHandler(acceptRequestSignal, ({ taskId, fingerprint }) => node.applyQueuedAccept(taskId, fingerprint));
  setHandler(reinitializeUpdate, ({ taskId, expiresAt }) => node.command('reinitialize', taskId, 'reinitialize requested through the API', { expiresAt }), {
    validator: ({ expiresAt }) => node.validate('reinitialize', expiresAt),
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
  setHandler(provisionUpdate, ({ taskId, verb, expiresAt }) => node.provision(verb, taskId, expiresAt), {
    validator: ({ verb, expiresAt }) => node.validate(verb, expiresAt),
  });
  setHandler(powerUpdate, ({ taskId, target, expiresAt }) => node.requestPower({ taskId, target }, expiresAt), {
    validator: ({ expiresAt }) => node.validatePower(expiresAt),
  });
  setHandler(operationsQueuedSignal, () => node.noteOperationsQueued());
  setHandler(slotGrantedSignal, () => operations.onSlotGranted());
  setHandler(groupDecisionSignal, ({ taskId, decision }) => operations.onDecision(taskId, decision));
  setHandler(powerDriftSignal, () => node.notePowerDrift());
  setHandler(installEventSignal, () => operations.installs.onInstallEvent());
  setHandler(abortInstallUpdate, () => operations.installs.requestAbort(), { validator: ({ expiresAt }) => node.validate('abort', expiresAt) });

  // One piece of work at a time: a power change or correction never overlaps an operation on the node.
  for (;;) {
    await condition(() => node.nextWork() !== null || (node.idle && workflowInfo().continueAsNewSuggested));
    switch (node.nextWork()) {
      case 'initialize':
        await node.initialize();
        continue;
      case 'provision':
        await provisioning.run();
        continue;
      case 'power':
        await power.change();
        continue;
      case 'operations':
        await operations.drain();
        continue;
      case 'power_drift':
        await power.correctDrift();
        continue;
      case null:
        await condition(allHandlersFinished);
        await continueAsNew<typeof nodeLifecycle>({ ...input, carried: node.carry() });
    }
  }
}
