import { TranslationBundle } from '@jupyterlab/translation';

import { JobsAPI } from './handler';
import { IJob } from './tokens';
import { confirmCancel, confirmDelete, elapsed } from './util';

/**
 * The actions on one job that lose work, each asking first in a JupyterLab dialog what is lost; the job
 * page uses them, and so can the panel's rows. Each answers null when the user kept the job, and throws
 * the server's error (a JobsAPIError) for the caller to show.
 */

/** Cancel `job` once the user confirmed; the job as the server left it, or null when kept running. */
export async function cancelJob(api: JobsAPI, trans: TranslationBundle, job: IJob, fetchedAt = 0): Promise<IJob | null> {
  const ran = job.started_at ? elapsed(job, fetchedAt) : null;
  if (!(await confirmCancel(trans, job.id, job.name, ran))) {
    return null;
  }
  return api.cancel(job.id);
}

/** Delete an ended `job` (its record, log and outputs) once the user confirmed; false when kept. */
export async function deleteJob(api: JobsAPI, trans: TranslationBundle, job: Pick<IJob, 'id' | 'name'>): Promise<boolean> {
  if (!(await confirmDelete(trans, job.id, job.name))) {
    return false;
  }
  await api.remove(job.id);
  return true;
}
