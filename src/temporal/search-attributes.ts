import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

/**
 * The dev server registers NodeState only when it creates a namespace, and an external server may not
 * have it: make sure it exists, and wait until the namespace sees it.
 */
export async function ensureNodeStateAttribute(connection: Connection, namespace: string): Promise<void> {
  const has = async () => {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    return Boolean(customAttributes && 'NodeState' in customAttributes);
  };
  if (await has()) return;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: { NodeState: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD },
  });
  for (let i = 0; i < 100 && !(await has()); i++) await sleep(100);
}
