import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { KernelMessage } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';
import { IDisposable } from '@lumino/disposable';
import { PanelLayout, Widget } from '@lumino/widgets';

import { JobDisplays } from './displays';
import { JobsAPI } from './handler';
import { JobLog } from './log';
import { outputFileList } from './files';
import { IJob, IOutput, TERMINAL } from './tokens';
import { badge, confirmCancel, elapsed, formatDuration, h } from './util';
import { IJobState, JobWatcher } from './watcher';

/** The MIME type of a job as a notebook output: `{"id": 12, "name": "train", "out": ["model"]}`. */
export const JOB_MIME_TYPE = 'application/vnd.jupyter-jobs.job+json';

/** A job named by a notebook output. */
export interface IJobRef {
  id: number;
  name: string;
  out: string[];
}

/** The job a bundle names, or null when it names none (a bundle is untrusted data). */
export function parseJobRef(data: unknown): IJobRef | null {
  if (!data || typeof data !== 'object') {
    return null;
  }
  const { id, name, out } = data as { [key: string]: unknown };
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) {
    return null;
  }
  return {
    id,
    name: typeof name === 'string' ? name : '',
    out: Array.isArray(out) ? out.filter((o): o is string => typeof o === 'string') : []
  };
}

/** What the renderer needs from the application. */
export interface IJobViewServices {
  api: JobsAPI;
  watcher: JobWatcher;
  trans: TranslationBundle;
  rendermime: IRenderMimeRegistry;
  notebooks: INotebookTracker | null;
  /** Open the job's page. */
  openJob: (id: number) => void;
  /** Open a notebook or image output of a job in Lab. */
  openOutput: (id: number, output: IOutput) => void;
}

/** How many output files the view lists before pointing to the job page. */
const MAX_FILES = 20;

/**
 * A job in a notebook, live from the server, whatever became of the kernel that started it:
 * name, status, pending reason, elapsed time, the log (a terminal's `\r`), the rich outputs, Cancel,
 * the output files, and "Fetch values" that loads the job's --out values into the notebook's kernel.
 */
export class JobRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private services: IJobViewServices) {
    super();
    const trans = services.trans;
    this.addClass('jp-JobView');
    const top = new Widget({ node: h('div', 'jp-JobView-top') });
    this._name = h('span', 'jp-JobView-name');
    this._link = h('button', 'jp-JobView-id');
    this._link.onclick = () => this._ref && this.services.openJob(this._ref.id);
    this._badge = h('span', 'jp-JobView-badge');
    this._elapsed = h('span', 'jp-JobView-elapsed');
    this._cancel = h('button', 'jp-Button jp-mod-styled jp-mod-warn jp-JobView-cancel', trans.__('Cancel'));
    this._cancel.onclick = () => void this.cancel();
    this._fetch = h('button', 'jp-Button jp-mod-styled jp-mod-accept jp-JobView-fetch', trans.__('Fetch values'));
    this._fetch.onclick = () => void this.fetchValues();
    const header = h('div', 'jp-JobView-header');
    header.append(this._badge, this._name, this._link, this._elapsed, h('span', 'jp-JobView-spacer'), this._fetch,
      this._cancel);
    this._message = h('div', 'jp-JobView-message');
    this._result = h('pre', 'jp-JobView-result');
    top.node.append(header, this._message, this._result);
    this._log = new JobLog('jp-JobView-log');
    this._displays = new JobDisplays(services.api, () => this._notebook()?.content.rendermime ?? services.rendermime);
    this._files = new Widget({ node: h('div', 'jp-JobView-files') });
    const layout = (this.layout = new PanelLayout());
    for (const widget of [top, this._log, this._displays, this._files]) {
      layout.addWidget(widget);
    }
    this._show({ job: null, notFound: false, error: null, fetchedAt: 0 });
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const ref = parseJobRef(model.data[JOB_MIME_TYPE]);
    if (ref && this._ref && ref.id === this._ref.id) {
      return; // the same job again (a re-render): the live view goes on
    }
    this._stop();
    if (this._ref) {
      // Another job in the same output (rare: Lab makes a renderer per output): start afresh.
      this._log.clear();
      this._files.node.replaceChildren();
      this._result.textContent = '';
      this._filesShown = false;
    }
    this._ref = ref;
    if (!ref) {
      this._message.textContent = this.services.trans.__('This output names no job (it holds no job id).');
      return;
    }
    const trans = this.services.trans;
    this.node.dataset.jobId = String(ref.id);
    this._name.textContent = ref.name || trans.__('Job');
    this._link.textContent = `#${ref.id}`;
    this._link.title = trans.__('Open the page of job #%1', ref.id);
    this._link.setAttribute('aria-label', this._link.title);
    this._cancel.setAttribute('aria-label', trans.__('Cancel job #%1', ref.id));
    this._log.node.setAttribute('aria-label', trans.__('Log of job #%1', ref.id));
    this._displays.node.setAttribute('aria-label', trans.__('Output of job #%1', ref.id));
    this._displays.node.setAttribute('role', 'region');
    this._fetch.setAttribute('aria-label', trans.__('Fetch the values of job #%1 into this notebook', ref.id));
    this._fetch.title = trans.__('Run %job fetch %1 in this notebook\'s kernel: %2', ref.id, ref.out.join(', '));
    this._watch = this.services.watcher.watch(ref.id, state => this._show(state), { notify: true });
    const abort = (this._abort = new AbortController());
    void this.services.api.stream(ref.id, 'logs', 0, text => this._log.append(text), abort.signal);
    void this._displays.follow(ref.id);
  }

  /** Cancel the job, once the user confirmed (a run may have taken hours). */
  async cancel(): Promise<void> {
    const ref = this._ref;
    if (!ref) {
      return;
    }
    const trans = this.services.trans;
    const job = this._state?.job;
    const ran = job?.started_at ? elapsed(job, this._state?.fetchedAt ?? 0) : null;
    if (!(await confirmCancel(trans, ref.id, job?.name || ref.name, ran))) {
      return;
    }
    this._cancel.disabled = true;
    try {
      await this.services.api.cancel(ref.id);
    } catch (error) {
      this._result.textContent = trans.__('Could not cancel job #%1: %2', ref.id, (error as Error).message);
    }
    this.services.watcher.refresh(ref.id);
  }

  /** Run `%job fetch ID` in the kernel of the notebook that holds this output. */
  async fetchValues(): Promise<void> {
    const ref = this._ref;
    if (!ref) {
      return;
    }
    const trans = this.services.trans;
    const kernel = this._notebook()?.sessionContext.session?.kernel;
    if (!kernel) {
      this._result.textContent = trans.__('No kernel: start this notebook\'s kernel, then fetch again.');
      return;
    }
    this._fetch.disabled = true;
    this._result.textContent = trans.__('Fetching…');
    let said = '';
    // The extension is loaded first: after a kernel restart, %job is not defined yet.
    const future = kernel.requestExecute({
      code: `get_ipython().extension_manager.load_extension('jupyter_jobs')\n%job fetch ${ref.id}`,
      store_history: false
    });
    future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
      if (KernelMessage.isStreamMsg(msg)) {
        said += msg.content.text;
      } else if (KernelMessage.isErrorMsg(msg)) {
        said += `${msg.content.ename}: ${msg.content.evalue}\n`;
      } else if (KernelMessage.isDisplayDataMsg(msg) || KernelMessage.isExecuteResultMsg(msg)) {
        said += `${msg.content.data['text/plain'] ?? ''}\n`;
      }
    };
    try {
      const reply = await future.done;
      const ok = reply.content.status === 'ok';
      this._result.dataset.status = ok ? 'ok' : 'error';
      this._result.textContent = said.trim() || (ok ? trans.__('Fetched: %1', ref.out.join(', ')) : trans.__('Failed'));
    } catch (error) {
      this._result.dataset.status = 'error';
      this._result.textContent = (error as Error).message;
    } finally {
      this._fetch.disabled = false;
    }
  }

  private _show(state: IJobState): void {
    const trans = this.services.trans;
    const job = state.job;
    this._state = state;
    const ended = !job || TERMINAL.includes(job.status);
    this.node.dataset.status = job ? job.status : state.notFound ? 'NotFound' : '';
    if (state.notFound && this._ref) {
      this._badge.replaceChildren();
      this._message.textContent = trans.__(
        'Job #%1 was not found on this server: it was deleted, or it ran on another Jupyter server.',
        this._ref.id
      );
      this._hide(this._cancel, true);
      this._hide(this._fetch, true);
      this._stop(false);
      return;
    }
    if (!job) {
      this._message.textContent = state.error ? trans.__('Cannot reach the server: %1', state.error) : '';
      this._hide(this._cancel, true);
      this._hide(this._fetch, true);
      return;
    }
    this._badge.replaceChildren(badge(job));
    this._elapsed.textContent = formatDuration(elapsed(job, state.fetchedAt));
    this._elapsed.title = trans.__('Elapsed');
    const waiting = job.status === 'Pending' ? trans.__('Waiting: ') : '';
    const message = job.message && job.message !== job.status ? waiting + job.message : '';
    this._message.textContent = state.error ? trans.__('Cannot reach the server: %1', state.error) : message;
    this._hide(this._cancel, ended);
    this._hide(this._fetch, !ended || !this._ref?.out.length);
    if (ended) {
      this._cancel.disabled = false;
      if (!this._filesShown) {
        this._filesShown = true;
        void this._showFiles(job);
      }
    }
    this._tick(!ended);
  }

  /** While the job runs, the elapsed time ticks every second between polls. */
  private _tick(running: boolean): void {
    if (running && !this._timer) {
      this._timer = window.setInterval(() => {
        const { job, fetchedAt } = this._state;
        if (job) {
          this._elapsed.textContent = formatDuration(elapsed(job, fetchedAt));
        }
      }, 1000);
    } else if (!running && this._timer) {
      window.clearInterval(this._timer);
      this._timer = 0;
    }
  }

  private async _showFiles(job: IJob): Promise<void> {
    const trans = this.services.trans;
    let outputs: IOutput[];
    try {
      ({ outputs } = await this.services.api.outputs(job.id));
    } catch (error) {
      this._files.node.textContent = trans.__('Cannot list the output files: %1', (error as Error).message);
      return;
    }
    if (!outputs.length) {
      return;
    }
    this._files.node.replaceChildren(outputFileList(outputs, trans, {
        max: MAX_FILES,
        more: () => this.services.openJob(job.id),
        open: output => this.services.openOutput(job.id, output)
      }));
  }

  /** The notebook panel whose page holds this view, if any. */
  private _notebook(): NotebookPanel | null {
    return this.services.notebooks?.find(panel => panel.node.contains(this.node)) ?? null;
  }

  private _hide(node: HTMLElement, hidden: boolean): void {
    // jp-Button sets `display`, which beats the `hidden` attribute.
    node.style.display = hidden ? 'none' : '';
  }

  /** Stop following (the log and displays too unless `streams` is false, e.g. for a job not found). */
  private _stop(streams = true): void {
    this._watch?.dispose();
    this._watch = null;
    this._tick(false);
    if (streams) {
      this._abort?.abort();
      this._displays.stop();
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._stop();
    super.dispose();
  }

  private _ref: IJobRef | null = null;
  private _state: IJobState = { job: null, notFound: false, error: null, fetchedAt: 0 };
  private _watch: IDisposable | null = null;
  private _abort: AbortController | null = null;
  private _timer = 0;
  private _filesShown = false;
  private _name: HTMLSpanElement;
  private _link: HTMLButtonElement;
  private _badge: HTMLSpanElement;
  private _elapsed: HTMLSpanElement;
  private _cancel: HTMLButtonElement;
  private _fetch: HTMLButtonElement;
  private _message: HTMLDivElement;
  private _result: HTMLPreElement;
  private _log: JobLog;
  private _displays: JobDisplays;
  private _files: Widget;
}
