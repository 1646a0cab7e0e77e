import { continueAsNew, patched, sleep, workflowInfo } from '@temporalio/workflow';
import type { TaskProgress } from '../src/db/operations-repo';
import { db as bulk, sweeps as fanOut } from './activity-options';
import type { WaveOfTask } from '../activities/operations';
import type { BulkOperationInput } from './definitions';

/**
 * One workflow per bulk request (task:<id>). The nodes do the work in their own workflows; this one
 * wakes them a wave at a time (for a bulk accept, sends each node's accept), decides a commission as a
 * whole, and closes the task. Progress lives in PostgreSQL, so a 10,000-node request costs this history
 * a poll every few seconds, not a signal per node.
 */
export async function bulkOperation(input: BulkOperationInput): Promise<void> {
  const { taskId, kind } = input;
  let phase = input.phase ?? 'notify';

  if (phase === 'notify') {
    // A discovery has no node yet to wake: each address gets a workflow of its own.
    if (kind === 'discover') await fanOut.startDiscoveries({ taskId });
    // An unmanaged node has no workflow to wake either: this one sends the accepts, a page at a time.
    else if (kind === 'accept') await acceptInPages(input);
    // A request started before waves replays as it ran: all its nodes at once.
    else if (patched(WAVES)) await wakeInWaves(input, { taskId, kind, stage: 'step' });
    else await fanOut.notifyNodesOfTask({ taskId, signal: 'operationsQueued' });
    phase = 'steps';
  }
  if (phase === 'steps' && kind === 'commission') {
    // Every node has done its own step (or could not start): decide for all of them at once.
    const progress = await pollUntil(taskId, (p) => p.queued + p.running === 0, { ...input, phase: 'steps' });
    const decision = await bulk.decide({ taskId, decision: progress.failed + progress.stepFailures > 0 ? 'rollback' : 'commit' });
    if (patched(WAVES)) await wakeInWaves({ ...input, phase: 'steps' }, { taskId, kind, stage: 'decision', decision: { taskId, decision } });
    else await fanOut.notifyNodesOfTask({ taskId, signal: 'groupDecision', args: [{ taskId, decision }], statuses: ['waiting', 'running'] });
  }
  phase = 'finish';
  // An accepted node's row ends with its own accept task (active, or initialization failed): followed here.
  const read = kind === 'accept' ? bulk.followAccepts : bulk.taskProgress;
  await pollUntil(taskId, (p) => p.succeeded + p.failed === p.total, { ...input, phase }, read);
  await bulk.finishBulkTask({ taskId, kind });
}

/** The patch that made a request wake its nodes in waves; a request started before it replays as it ran. */
const WAVES = 'bulk-wakes-in-waves';

/**
 * Wakes the request's nodes a wave at a time (activities/operations.ts wakeInWaves) until all are woken.
 * `carry` is what a continued run starts from; it resumes the same stage where this one stopped.
 */
async function wakeInWaves(carry: BulkOperationInput, wave: WaveOfTask): Promise<void> {
  let afterId = carry.woken?.stage === wave.stage ? carry.woken.afterId : 0;
  for (;;) {
    const woken = await fanOut.wakeInWaves({ ...wave, afterId });
    if (woken.done) return;
    afterId = woken.afterId;
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof bulkOperation>({ ...carry, woken: { stage: wave.stage, afterId } });
  }
}

/** Accepts per activity: progress shows between pages, and a retry redoes at most one page's lookups. */
const ACCEPT_PAGE = 200;

/** Sends the accepts of a bulk accept until none is queued, following the accepted nodes as it goes. */
async function acceptInPages(input: BulkOperationInput): Promise<void> {
  for (;;) {
    const taken = await fanOut.acceptQueuedNodes({ taskId: input.taskId, limit: ACCEPT_PAGE });
    if (taken === 0) return;
    await bulk.followAccepts({ taskId: input.taskId });
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof bulkOperation>({ ...input, phase: 'notify' });
  }
}

async function pollUntil(
  taskId: string,
  done: (p: TaskProgress) => boolean,
  carry: BulkOperationInput,
  read: (input: { taskId: string }) => Promise<TaskProgress> = bulk.taskProgress,
): Promise<TaskProgress> {
  let interval = 250;
  for (;;) {
    const progress = await read({ taskId });
    if (done(progress)) return progress;
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof bulkOperation>(carry);
    await sleep(interval);
    interval = Math.min(Math.round(interval * 1.5), 5_000);
  }
}
