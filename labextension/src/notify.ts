import { Notification } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { IJob } from './tokens';
import { formatDuration } from './util';

const TYPES: { [status: string]: Notification.TypeOptions } = {
  Succeeded: 'success',
  Failed: 'error',
  Cancelled: 'warning',
  Unknown: 'warning'
};

/** Say in JupyterLab's notification area that a job ended, with a button to its page. */
export function notifyEnded(job: IJob, trans: TranslationBundle, openJob: (id: number) => void): string {
  const took = job.durations.running !== null ? trans.__(' after %1', formatDuration(job.durations.running)) : '';
  const why = job.status === 'Failed' && job.message ? `: ${job.message}` : '';
  return Notification.emit(
    trans.__("Job #%1 '%2' %3%4%5", job.id, job.name, job.status.toLowerCase(), took, why),
    TYPES[job.status] ?? 'info',
    {
      // A failure stays until read; a success goes after a while (it stays in the notification list).
      autoClose: job.status === 'Succeeded' ? 10000 : false,
      actions: [{ label: trans.__('Open job'), caption: trans.__('Open the page of job #%1', job.id), callback: () => openJob(job.id) }]
    }
  );
}
