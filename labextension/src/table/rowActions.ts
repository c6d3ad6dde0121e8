import { Dialog, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { cancelJob, deleteJob } from '../actions';
import { JobsAPI } from '../handler';
import { canOpen } from '../open';
import { rerunJob } from '../rerun';
import { IJob, IOutput, TERMINAL } from '../tokens';
import { elapsed, spokenDuration } from '../util';

/** What the table's actions need from the application. */
export interface IRowActionContext {
  api: JobsAPI;
  trans: TranslationBundle;
  /** Open the job's page. */
  open: (job: Pick<IJob, 'id'>) => void;
  /** Open one output of a job in Lab (a notebook, an image). */
  openOutput: (id: number, output: IOutput) => void;
  /** Something changed on the server: refresh the list. */
  changed: () => void;
}

export function hasEnded(job: IJob): boolean {
  return TERMINAL.includes(job.status);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Cancel one job once the user confirmed in the dialog that says what is lost. */
export async function cancelRow(ctx: IRowActionContext, job: IJob): Promise<void> {
  try {
    if (await cancelJob(ctx.api, ctx.trans, job)) {
      ctx.changed();
    }
  } catch (error) {
    await showErrorMessage(ctx.trans.__('Could not cancel job #%1', job.id), message(error));
  }
}

/**
 * Delete one ended job once the user confirmed. A job that has not ended cannot be deleted: the dialog
 * says so, and offers to cancel it instead (saying what that loses).
 */
export async function deleteRow(ctx: IRowActionContext, job: IJob): Promise<void> {
  const trans = ctx.trans;
  if (!hasEnded(job)) {
    const ran = job.started_at ? elapsed(job) : null;
    const lost =
      ran === null
        ? trans.__('Cancelling it takes it out of the queue; it never runs.')
        : trans.__('Cancelling it stops its process after %1; what it has not written is lost.', spokenDuration(ran));
    const result = await showDialog({
      title: trans.__("Job #%1 '%2' has not ended", job.id, job.name),
      body: trans.__('Only an ended job can be deleted: cancel it first. %1', lost),
      buttons: [Dialog.cancelButton({ label: trans.__('Keep running') }), Dialog.warnButton({ label: trans.__('Cancel job') })],
      defaultButton: 0
    });
    if (result.button.accept) {
      try {
        await ctx.api.cancel(job.id);
        ctx.changed();
      } catch (error) {
        await showErrorMessage(trans.__('Could not cancel job #%1', job.id), message(error));
      }
    }
    return;
  }
  try {
    if (await deleteJob(ctx.api, trans, job)) {
      ctx.changed();
    }
  } catch (error) {
    await showErrorMessage(trans.__('Could not delete job #%1', job.id), message(error));
  }
}

/** Rerun through the form prefilled with what the job ran with (its full record); the new job's page opens. */
export async function rerunRow(ctx: IRowActionContext, job: IJob): Promise<void> {
  try {
    const full = await ctx.api.get(job.id);
    const rerun = await rerunJob(ctx.api, ctx.trans, full);
    if (rerun) {
      ctx.changed();
      ctx.open(rerun);
    }
  } catch (error) {
    await showErrorMessage(ctx.trans.__('Could not rerun job #%1', job.id), message(error));
  }
}

/**
 * Open what a job made: its notebook (a notebook job's executed copy), else its first image, in Lab; when
 * it made nothing Lab opens (data files, folders), its page, which lists every file to download.
 */
export async function openOutputsRow(ctx: IRowActionContext, job: IJob): Promise<void> {
  try {
    const { outputs } = await ctx.api.outputs(job.id);
    const openable = outputs.filter(canOpen);
    const first = openable.find(output => /\.ipynb$/i.test(output.path)) ?? openable[0];
    if (first) {
      ctx.openOutput(job.id, first);
    } else {
      ctx.open(job);
    }
  } catch (error) {
    await showErrorMessage(ctx.trans.__('Could not list the outputs of job #%1', job.id), message(error));
  }
}

/** Run `act` on every job; failures are reported together in one notification, naming each job. */
async function each(
  ctx: IRowActionContext,
  jobs: IJob[],
  act: (job: IJob) => Promise<unknown>,
  done: (n: number) => string,
  failed: (n: number) => string
): Promise<void> {
  const outcomes = await Promise.all(
    jobs.map(job => act(job).then(() => '', error => `#${job.id} '${job.name}': ${message(error)}`))
  );
  const failures = outcomes.filter(line => line);
  const succeeded = jobs.length - failures.length;
  if (succeeded) {
    Notification.success(done(succeeded), { autoClose: 5000 });
  }
  if (failures.length) {
    Notification.error(`${failed(failures.length)}\n${failures.join('\n')}`, { autoClose: false });
  }
  ctx.changed();
}

/** Cancel the unfinished jobs among `jobs` after one dialog that says how many and what is lost. */
export async function bulkCancel(ctx: IRowActionContext, jobs: IJob[]): Promise<void> {
  const trans = ctx.trans;
  const unfinished = jobs.filter(job => !hasEnded(job));
  if (!unfinished.length) {
    return;
  }
  const result = await showDialog({
    title: trans._n('Cancel %1 job?', 'Cancel %1 jobs?', unfinished.length),
    body: trans.__(
      'Running jobs are stopped and what they have not written is lost; jobs still queued leave the queue and never run.'
    ),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Keep running') }),
      Dialog.warnButton({ label: trans._n('Cancel %1 job', 'Cancel %1 jobs', unfinished.length) })
    ],
    defaultButton: 0
  });
  if (result.button.accept) {
    await each(ctx, unfinished, job => ctx.api.cancel(job.id), n =>
      trans._n('Cancelled %1 job', 'Cancelled %1 jobs', n), n => trans._n('Could not cancel %1 job:', 'Could not cancel %1 jobs:', n));
  }
}

/** Delete `jobs` after one dialog that says how many and what is lost; the server refuses a job not ended. */
export async function bulkDelete(ctx: IRowActionContext, jobs: IJob[]): Promise<void> {
  const trans = ctx.trans;
  if (!jobs.length) {
    return;
  }
  const result = await showDialog({
    title: trans._n('Delete %1 job?', 'Delete %1 jobs?', jobs.length),
    body: trans.__('Their logs and outputs are removed, and they leave the list; this cannot be undone. A job that has not ended is not deleted.'),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Keep') }),
      Dialog.warnButton({ label: trans._n('Delete %1 job', 'Delete %1 jobs', jobs.length) })
    ],
    defaultButton: 0
  });
  if (result.button.accept) {
    await each(ctx, jobs, job => ctx.api.remove(job.id), n =>
      trans._n('Deleted %1 job', 'Deleted %1 jobs', n), n => trans._n('Could not delete %1 job:', 'Could not delete %1 jobs:', n));
  }
}
