import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiClient } from './client';
import { progressLine, type Progress } from './render';

/** Follows a task until it ends, handing each progress reading to onProgress. */
export async function waitForTask(api: ApiClient, taskId: string, onProgress: (p: Progress) => void): Promise<any> {
  for (;;) {
    const task = await api.request('GET', `/api/v1/tasks/${taskId}`);
    if (task.progress) onProgress(task.progress);
    if (task.status === 'succeeded' || task.status === 'failed') return task;
    await sleep(300);
  }
}

/** A bar redrawn in place on a terminal; on a pipe, a line whenever progress changes. */
export function progressBar(silent: boolean) {
  const tty = process.stderr.isTTY;
  let last = '';
  return {
    update(p: Progress) {
      if (silent) return;
      const line = progressLine(p);
      if (line === last) return;
      last = line;
      process.stderr.write(tty ? `\r${line}` : `${line}\n`);
    },
    finish() {
      if (!silent && tty && last) process.stderr.write('\n');
    },
  };
}
