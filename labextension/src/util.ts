import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { IJob, TERMINAL } from './tokens';

/** Create an element with classes and optional text. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** "1h02m" / "3m05s" / "12s". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || seconds === undefined) {
    return '—';
  }
  const s = Math.floor(seconds);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (hours) {
    return `${hours}h${String(minutes).padStart(2, '0')}m`;
  }
  return minutes ? `${minutes}m${String(s % 60).padStart(2, '0')}s` : `${s % 60}s`;
}

export function formatTime(epoch: number | null): string {
  return epoch ? new Date(epoch * 1000).toLocaleString() : '—';
}

/** A status badge, coloured by theme variables. */
export function badge(job: IJob): HTMLSpanElement {
  const node = h('span', `jp-JobsBadge jp-JobsBadge-${job.status}`, job.status);
  node.title = job.message || job.status;
  return node;
}

/**
 * Seconds the job has been running (or queued, before it starts); with `fetchedAt` (when the record
 * was fetched, ms since the epoch), ticking on from then while it has not ended.
 */
export function elapsed(job: IJob, fetchedAt = 0): number | null {
  const base = job.durations.running ?? job.durations.queued;
  if (base === null || base === undefined) {
    return null;
  }
  const ticking = !TERMINAL.includes(job.status) && fetchedAt ? (Date.now() - fetchedAt) / 1000 : 0;
  return base + Math.max(0, ticking);
}

/** Ask before cancelling a job (a run may have taken hours); "Keep running" is the default. */
export async function confirmCancel(trans: TranslationBundle, id: number, name: string): Promise<boolean> {
  const result = await showDialog({
    title: trans.__('Cancel job #%1?', id),
    body: trans.__("Job #%1 '%2' stops now; what it has not saved as an output is lost.", id, name),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Keep running') }),
      Dialog.warnButton({ label: trans.__('Cancel job') })
    ],
    defaultButton: 0
  });
  return result.button.accept;
}

/** A job's labels as small `key=value` chips. */
export function labelChips(job: IJob): HTMLSpanElement[] {
  return Object.entries(job.labels ?? {}).map(([key, value]) => h('span', 'jp-JobsLabel', `${key}=${value}`));
}
