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

/** "2 h 10 min" / "3 min 5 s" / "12 s": a duration as a sentence says it. */
export function spokenDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (hours) {
    return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  }
  return minutes ? (s % 60 ? `${minutes} min ${s % 60} s` : `${minutes} min`) : `${s % 60} s`;
}

/**
 * Ask before cancelling a job (a run may have taken hours), saying what is lost: "Cancel job 12 'train'?
 * It has run 2 h 10 min; its process is stopped and what it has not written is lost." With `ran` null
 * (or not given) the job has not started. "Keep running" is the default button.
 */
export async function confirmCancel(
  trans: TranslationBundle,
  id: number,
  name: string,
  ran: number | null = null
): Promise<boolean> {
  const body =
    ran === null
      ? trans.__('It has not started; it leaves the queue and never runs.')
      : trans.__('It has run %1; its process is stopped and what it has not written is lost.', spokenDuration(ran));
  const result = await showDialog({
    title: trans.__("Cancel job #%1 '%2'?", id, name),
    body,
    buttons: [
      Dialog.cancelButton({ label: trans.__('Keep running') }),
      Dialog.warnButton({ label: trans.__('Cancel job') })
    ],
    defaultButton: 0
  });
  return result.button.accept;
}

/** Ask before deleting an ended job: its log, outputs and record go, for good. "Keep" is the default. */
export async function confirmDelete(trans: TranslationBundle, id: number, name: string): Promise<boolean> {
  const result = await showDialog({
    title: trans.__("Delete job #%1 '%2'?", id, name),
    body: trans.__('Its log and outputs are removed, and the job leaves the list; this cannot be undone.'),
    buttons: [Dialog.cancelButton({ label: trans.__('Keep') }), Dialog.warnButton({ label: trans.__('Delete job') })],
    defaultButton: 0
  });
  return result.button.accept;
}

/** A job's labels as small `key=value` chips. */
export function labelChips(job: IJob): HTMLSpanElement[] {
  return Object.entries(job.labels ?? {}).map(([key, value]) => h('span', 'jp-JobsLabel', `${key}=${value}`));
}

/** Set `node`'s text only when it differs: an unchanged node keeps a text selection and the screen reader's place. */
export function setText(node: HTMLElement, text: string): void {
  if (node.textContent !== text) {
    node.textContent = text;
  }
}
