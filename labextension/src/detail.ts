import { Clipboard } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { TranslationBundle } from '@jupyterlab/translation';
import { IDisposable } from '@lumino/disposable';
import { copyIcon } from '@jupyterlab/ui-components';
import { PanelLayout, Widget } from '@lumino/widgets';

import { cancelJob, deleteJob } from './actions';

import { JobDisplays } from './displays';
import { outputFileList } from './files';
import { JobsAPI, JobsAPIError } from './handler';
import { JobLog } from './log';
import { rerunJob } from './rerun';
import { IJob, IOutput, TERMINAL } from './tokens';
import { badge, formatDuration, formatTime, h, labelChips, setText } from './util';
import { IJobState, JobWatcher } from './watcher';

/**
 * What the server's retention does with a job: "Logs and outputs removed on <date>", "Data kept until
 * <date>", or '' when it keeps the job (no retention, pinned, not ended).
 */
export function retentionLine(job: IJob, trans: TranslationBundle): string {
  const pinned = job.pinned ? ' ' + trans.__('(pinned)') : '';
  if (job.data_removed_at) {
    return trans.__('Logs and outputs removed on %1; the record is kept.', formatTime(job.data_removed_at)) + pinned;
  }
  if (job.data_expires_at) {
    return trans.__('Data kept until %1 (pin the job to keep it: jupyter jobs pin %2).', formatTime(job.data_expires_at), job.id);
  }
  if (job.record_expires_at) {
    return trans.__('Job kept until %1.', formatTime(job.record_expires_at));
  }
  return job.pinned ? trans.__('Pinned: kept whatever its age.') : '';
}

/**
 * One job, as PrimeHub shows it: its description, labels and spec warnings, fields, live log, rich
 * outputs, Cancel and Rerun, output files (notebooks and images open in Lab).
 */
export class JobDetail extends Widget {
  constructor(
    private api: JobsAPI,
    private trans: TranslationBundle,
    readonly jobId: number,
    private actions: {
      changed: () => void;
      open: (job: IJob) => void;
      openOutput: (id: number, output: IOutput) => void;
      /** The job was deleted: close its page. */
      deleted?: (id: number) => void;
    },
    rendermime: IRenderMimeRegistry | null,
    watcher: JobWatcher
  ) {
    super();
    this.addClass('jp-JobDetail');
    this.id = `jupyter-jobs-detail-${jobId}`;
    this.title.label = trans.__('Job #%1', jobId); // until the job's name is known
    this.title.closable = true;
    this._header = h('div', 'jp-JobDetail-header');
    this._desc = h('div', 'jp-JobDetail-desc');
    this._labels = h('div', 'jp-JobsLabels jp-JobDetail-labels');
    this._warnings = h('ul', 'jp-JobDetail-warnings');
    this._message = h('div', 'jp-JobDetail-message');
    this._retention = h('div', 'jp-JobDetail-retention');
    this._fields = h('table', 'jp-JobDetail-fields');
    this._copyId = this._copyButton();
    const bar = h('div', 'jp-JobDetail-actions');
    this._cancel = h('button', 'jp-Button jp-mod-styled jp-mod-warn jp-JobDetail-cancel', trans.__('Cancel'));
    this._cancel.onclick = () => void this.cancel();
    this._rerun = h('button', 'jp-Button jp-mod-styled jp-mod-accept jp-JobDetail-rerun', trans.__('Rerun…'));
    this._rerun.onclick = () => void this.rerun();
    this._delete = h('button', 'jp-Button jp-mod-styled jp-mod-warn jp-JobDetail-delete', trans.__('Delete…'));
    this._delete.onclick = () => void this.delete();
    this._delete.style.display = 'none';
    this._error = h('div', 'jp-JobDetail-error');
    this._error.setAttribute('role', 'alert');
    bar.append(this._cancel, this._rerun, this._delete, this._error);
    this._log = new JobLog('jp-JobDetail-log');
    // Focusable (JobLog) and named, so the keyboard scrolls it and a screen reader says what it is.
    this._log.node.setAttribute('role', 'region');
    this._log.node.setAttribute('aria-label', trans.__('Log of job #%1', jobId));
    this._displays = new JobDisplays(api, () => rendermime);
    this._displays.addClass('jp-JobDetail-displays');
    const displaysTitle = h('h3', 'jp-JobDetail-displaysTitle', trans.__('Rich output'));
    displaysTitle.style.display = 'none';
    this._displays.changed.connect((_, count) => (displaysTitle.style.display = count ? '' : 'none'));
    this._outputs = h('div', 'jp-JobDetail-outputs');
    const top = new Widget();
    top.node.append(this._header, this._desc, this._labels, this._warnings, this._message, this._retention, bar, this._fields, h('h3', '', trans.__('Log')));
    const layout = (this.layout = new PanelLayout());
    layout.addWidget(top);
    layout.addWidget(this._log);
    layout.addWidget(new Widget({ node: displaysTitle }));
    layout.addWidget(this._displays);
    layout.addWidget(new Widget({ node: this._outputs }));
    // The job as the server's change feed keeps it (watcher.ts): no request while it does not change.
    this._watch = watcher.watch(jobId, state => void this._onState(state));
    void this.api.follow(jobId, 0, text => this._log.append(text), this._abort.signal);
    void this._displays.follow(jobId);
  }

  get job(): IJob | null {
    return this._job;
  }

  /** Cancel the job once the user confirmed in a dialog saying what is lost. */
  async cancel(): Promise<void> {
    if (!this._job) {
      return;
    }
    this._cancel.disabled = true;
    try {
      const job = await cancelJob(this.api, this.trans, this._job, this._fetchedAt);
      if (job) {
        this._fetchedAt = Date.now();
        this._show(job);
        this.actions.changed();
      }
    } catch (error) {
      this._fail(error);
    }
    this._cancel.disabled = !!this._job && TERMINAL.includes(this._job.status);
  }

  /** Delete the ended job (its log, outputs and record) once the user confirmed; its page closes. */
  async delete(): Promise<void> {
    if (!this._job) {
      return;
    }
    try {
      if (await deleteJob(this.api, this.trans, this._job)) {
        this.actions.changed();
        this.actions.deleted?.(this.jobId);
      }
    } catch (error) {
      this._fail(error);
    }
  }

  /** Rerun through a form prefilled with what the job ran with; the new job's page opens. */
  async rerun(): Promise<void> {
    const job = this._job ?? (await this.api.get(this.jobId));
    const rerun = await rerunJob(this.api, this.trans, job);
    if (rerun) {
      this.actions.changed();
      this.actions.open(rerun);
    }
  }

  private async _onState(state: IJobState): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    if (state.notFound) {
      this._error.textContent = this.trans.__('The server does not know job #%1 (was it deleted?)', this.jobId);
      return;
    }
    if (!state.job) {
      if (state.error) {
        this._error.textContent = state.error;
      }
      return;
    }
    const job = state.job;
    this._fetchedAt = state.fetchedAt;
    this._show(job);
    if (TERMINAL.includes(job.status) && !this._outputsShown) {
      this._outputsShown = true;
      await this._showOutputs();
    }
  }

  private _show(job: IJob): void {
    const trans = this.trans;
    this._job = job;
    this.title.label = job.name;
    this.title.caption = trans.__("Job #%1 '%2' (%3)", job.id, job.name, job.status);
    this.node.dataset.status = job.status;
    // Only what changed is touched: focus, a text selection and scroll stay where the user left them.
    const shown = JSON.stringify([job.name, job.status]);
    if (this._header.dataset.shown !== shown) {
      this._header.dataset.shown = shown;
      this._header.replaceChildren(h('span', 'jp-JobDetail-name', job.name), badge(job));
    }
    setText(this._desc, job.desc ?? '');
    const labels = JSON.stringify(job.labels ?? {});
    if (this._labels.dataset.shown !== labels) {
      this._labels.dataset.shown = labels;
      this._labels.replaceChildren(...labelChips(job));
    }
    const warnings = JSON.stringify(job.warnings ?? []);
    if (this._warnings.dataset.shown !== warnings) {
      this._warnings.dataset.shown = warnings;
      this._warnings.replaceChildren(...(job.warnings ?? []).map(w => h('li', 'jp-JobDetail-warning', w)));
    }
    this._warnings.title = trans.__('What the spec says that jupyter-jobs does not do');
    const waiting = job.status === 'Pending' ? trans.__('Waiting: ') : '';
    setText(this._message, job.message && job.message !== job.status ? waiting + job.message : '');
    setText(this._retention, retentionLine(job, trans));
    this._cancel.disabled = TERMINAL.includes(job.status);
    this._cancel.style.display = TERMINAL.includes(job.status) ? 'none' : '';
    this._delete.style.display = TERMINAL.includes(job.status) ? '' : 'none';
    const rows: [string, string][] = [
      [trans.__('Job id'), String(job.id)],
      [trans.__('Name'), job.name],
      [trans.__('User'), job.owner],
      [trans.__('Status'), job.status + (job.exit_code !== null ? ` (exit ${job.exit_code})` : '')],
      [trans.__('Start time'), formatTime(job.started_at)],
      [trans.__('Finished time'), formatTime(job.finished_at)],
      [trans.__('Duration'), formatDuration(job.durations.running)],
      [trans.__('Queued for'), formatDuration(job.durations.queued)],
      [trans.__('Instance type'), job.instance_type + (job.gpus.length ? ` · GPUs ${job.gpus.join(',')}` : '')],
      [trans.__('Image'), job.image || '—'],
      [trans.__('Command'), job.command],
      [trans.__('Datasets'), job.datasets.join(', ') || '—'],
      [trans.__('Attempt'), `${job.attempt} / ${job.max_attempts}`],
      [trans.__('Rerun of'), job.rerun_of ? `#${job.rerun_of}` : '—'],
      [trans.__('Schedule'), job.schedule_id ? `#${job.schedule_id}` : '—']
    ];
    if (this._fields.rows.length !== rows.length) {
      this._fields.replaceChildren(...rows.map(() => h('tr')));
      for (const row of Array.from(this._fields.rows)) {
        row.append(h('th'), h('td'));
        row.cells[1].append(h('span', 'jp-JobDetail-value'));
      }
      this._fields.rows[0].cells[1].append(this._copyId);
    }
    rows.forEach(([label, value], index) => {
      const row = this._fields.rows[index];
      setText(row.cells[0], label);
      setText(row.cells[1].firstElementChild as HTMLElement, value);
    });
    const value = (index: number) => this._fields.rows[index]?.cells[1]?.firstElementChild as HTMLElement | undefined;
    this._clocks = [value(6), value(7)];
    this._tick();
  }

  /** While the job is queued or runs, its clocks tick on every second from what the server last said. */
  private _tick(): void {
    const live = !!this._job && !TERMINAL.includes(this._job.status);
    if (live && !this._timer) {
      this._timer = window.setInterval(() => this._showClocks(), 1000);
    } else if (!live && this._timer) {
      window.clearInterval(this._timer);
      this._timer = 0;
    }
  }

  private _showClocks(): void {
    const job = this._job;
    const [running, queued] = this._clocks;
    if (!job || !running || !queued) {
      return;
    }
    const since = this._fetchedAt ? Math.max(0, (Date.now() - this._fetchedAt) / 1000) : 0;
    const { durations } = job;
    setText(running, formatDuration(
      durations.running === null ? null : durations.running + (job.status === 'Running' ? since : 0)
    ));
    setText(queued, formatDuration(
      durations.queued === null ? null : durations.queued + (job.status === 'Pending' ? since : 0)
    ));
  }

  private async _showOutputs(): Promise<void> {
    const trans = this.trans;
    if (this._job?.data_removed_at) {
      this._outputs.replaceChildren(h('p', '', trans.__('No outputs: retention removed them.')));
      return;
    }
    const { outputs, missing } = await this.api.outputs(this.jobId);
    const children = [outputs.length
        ? outputFileList(outputs, trans, { open: output => this.actions.openOutput(this.jobId, output) }) : h('p', '', trans.__('No outputs.'))];
    if (missing.length) {
      children.push(h('p', 'jp-JobDetail-error', trans.__('Missing: %1', missing.join(', '))));
    }
    this._outputs.replaceChildren(...children);
  }

  private _fail(error: unknown): void {
    this._error.textContent = error instanceof JobsAPIError || error instanceof Error ? error.message : String(error);
    this._cancel.disabled = this._job ? TERMINAL.includes(this._job.status) : false;
  }

  dispose(): void {
    this._abort.abort();
    this._watch.dispose();
    window.clearInterval(this._timer);
    super.dispose();
  }

  /** A button that copies the job's id, named for screen readers. */
  private _copyButton(): HTMLButtonElement {
    const button = h('button', 'jp-Button jp-mod-minimal jp-JobDetail-copyId');
    const label = this.trans.__('Copy job id %1', this.jobId);
    button.setAttribute('aria-label', label);
    button.title = label;
    button.append(copyIcon.element({ tag: 'span', elementSize: 'normal' }));
    button.onclick = () => Clipboard.copyToSystem(String(this.jobId));
    return button;
  }

  private _job: IJob | null = null;
  private _fetchedAt = 0;
  private _copyId: HTMLButtonElement;
  private _outputsShown = false;
  private _abort = new AbortController();
  private _watch: IDisposable;
  private _timer = 0;
  /** The cells of the running and queued times (Duration, Queued for). */
  private _clocks: (HTMLElement | undefined)[] = [];
  private _header: HTMLDivElement;
  private _desc: HTMLDivElement;
  private _labels: HTMLDivElement;
  private _warnings: HTMLUListElement;
  private _message: HTMLDivElement;
  private _retention: HTMLDivElement;
  private _fields: HTMLTableElement;
  private _cancel: HTMLButtonElement;
  private _rerun: HTMLButtonElement;
  private _delete: HTMLButtonElement;
  private _error: HTMLDivElement;
  private _log: JobLog;
  private _displays: JobDisplays;
  private _outputs: HTMLDivElement;
}
