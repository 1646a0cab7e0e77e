import { condition, proxyActivities, setHandler, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { JoinStep } from '../src/ssh/join-session';
import { db, failureMessage, refusalOf } from './activity-options';
import { JOIN_STEP_FAILED, slotGrantedSignal, type DiscoverAddressInput } from './definitions';

const MAX_RECHECK_MS = 5 * 60_000;

/** The SSH session: one attempt per worker; a worker that dies mid-join is noticed by its heartbeat and the (idempotent) join runs again. */
const ssh = proxyActivities<Activities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: [JOIN_STEP_FAILED, 'NotFound'] },
});

/**
 * One address of a discover request (Ganeti's node-add): waits for a slot of the cluster's cap, joins
 * the node over one verified SSH connection, then sees the node announce with the key the join reported,
 * get accepted on that word and initialize. Each failure names its step.
 */
export async function discoverAddress(input: DiscoverAddressInput): Promise<void> {
  const { operationId } = input;
  let slotHint = false;
  setHandler(slotGrantedSignal, () => {
    slotHint = true;
  });

  if ((await db.beginDiscovery({ operationId })).done) return;

  let recheck = 5_000;
  for (;;) {
    slotHint = false;
    if (await db.requestSlot({ operationId })) break;
    // A release hands the slot over and signals; the timer only covers a lost signal.
    await condition(() => slotHint, recheck);
    recheck = Math.min(recheck * 2, MAX_RECHECK_MS);
  }
  let joined: { status: string } | undefined;
  let failure: { step: JoinStep; error: string } | undefined;
  try {
    joined = await ssh.joinOverSsh({ operationId });
  } catch (err) {
    const refusal = refusalOf(err);
    const step = refusal?.type === JOIN_STEP_FAILED ? ((refusal.details?.[0] as { step?: JoinStep })?.step ?? 'join') : 'join';
    failure = { step, error: failureMessage(err) };
  } finally {
    await db.releaseSlot({ operationId });
  }
  if (failure) {
    await db.failDiscovery({ operationId, ...failure });
    return;
  }

  // The agent announces by itself; the accept and the initialization follow. Initialization always ends
  // (active or failed, Skyring's window), so only the announcement needs a deadline of its own.
  const announceBy = Date.now() + input.announceTimeoutMs;
  let interval = 500;
  for (;;) {
    const check = await db.checkJoinedNode({ operationId, joinStatus: joined!.status });
    if (check.done) return;
    if (check.waitingFor === 'announce' && Date.now() > announceBy) {
      await db.failDiscovery({
        operationId,
        step: 'announce',
        error: `the joined agent did not announce itself with the key its join reported within ${input.announceTimeoutMs} ms (can the machine reach AGENT_SERVER_URL? its log: /var/log/nodeagent.log or journalctl -u nodeagent)`,
      });
      return;
    }
    await sleep(interval);
    interval = Math.min(Math.round(interval * 1.5), 5_000);
  }
}
