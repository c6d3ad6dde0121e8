import * as nbformat from '@jupyterlab/nbformat';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { PanelLayout, Widget } from '@lumino/widgets';

import { JobsAPI } from './handler';

/** Output types a job's displays stream may hold (docs/api/openapi.yaml, /jobs/{id}/displays). */
const SHOWN = new Set(['display_data', 'execute_result', 'error', 'stream']);

/**
 * The outputs of a stream of Jupyter output messages, as a notebook cell keeps them: each one added,
 * `update_display_data` replacing every earlier output with its display_id, `clear_output`
 * clearing what came before (at once, or with `wait` when the next output arrives).
 * The messages are untrusted (a job wrote them), so the model is: HTML is sanitised, no script runs.
 */
export class DisplaysModel extends OutputAreaModel {
  constructor() {
    super({ trusted: false });
  }

  /** Apply one message of the stream. */
  apply(message: { [key: string]: any }): void {
    const type = message.output_type;
    const displayId: string | undefined = message.transient?.display_id;
    if (type === 'clear_output') {
      if (message.wait) {
        this._clearNext = true;
      } else {
        this.reset();
      }
      return;
    }
    if (type === 'update_display_data') {
      for (const index of (displayId && this._displays.get(displayId)) || []) {
        this.set(index, { output_type: 'display_data', data: message.data, metadata: message.metadata ?? {} });
      }
      return;
    }
    if (!SHOWN.has(type)) {
      return; // a newer kind of message: nothing to show for it
    }
    if (this._clearNext) {
      this.reset();
    }
    const { transient, ...output } = message; // eslint-disable-line @typescript-eslint/no-unused-vars
    const index = this.add(output as nbformat.IOutput) - 1;
    if (displayId) {
      this._displays.set(displayId, [...(this._displays.get(displayId) ?? []), index]);
    }
  }

  /** Forget every output (and every display_id). */
  reset(): void {
    this._clearNext = false;
    this._displays.clear();
    this.clear();
  }

  private _clearNext = false;
  private _displays = new Map<string, number[]>();
}

/**
 * A job's rich outputs (plots, tables, markdown, errors), live: follows GET /jobs/{id}/displays and
 * renders what arrives in an OutputArea. Used by the notebook's job view and by the job page.
 */
export class JobDisplays extends Widget {
  /**
   * @param rendermime gives the registry to render with, asked when the view is first shown (the
   *   notebook's own, once the view knows which notebook holds it).
   */
  constructor(
    private api: JobsAPI,
    private rendermime: () => IRenderMimeRegistry | null
  ) {
    super();
    this.addClass('jp-JobDisplays');
    this.layout = new PanelLayout();
    this.model.changed.connect(() => this._changed.emit(this.model.length), this);
  }

  readonly model = new DisplaysModel();

  /** Emitted with the number of outputs when they change. */
  get changed(): ISignal<this, number> {
    return this._changed;
  }

  /** Follow job `id`'s displays from the start; ends when the job does (or on `stop`). */
  follow(id: number): Promise<void> {
    this.stop();
    this.model.reset();
    this._partial = '';
    const abort = (this._abort = new AbortController());
    return this.api.stream(id, 'displays', 0, text => this._feed(text), abort.signal).then(() => undefined);
  }

  stop(): void {
    this._abort?.abort();
    this._abort = null;
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this._area) {
      const rendermime = this.rendermime();
      if (rendermime) {
        this._area = new OutputArea({ model: this.model, rendermime });
        (this.layout as PanelLayout).addWidget(this._area);
      }
    }
  }

  /** Only complete lines are parsed; the rest waits for its newline. */
  private _feed(text: string): void {
    const lines = (this._partial + text).split('\n');
    this._partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) {
        continue;
      }
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        console.warn('jupyter-jobs: a line of the displays stream is not JSON; skipped', line.slice(0, 200));
        continue;
      }
      if (message && typeof message === 'object' && !Array.isArray(message)) {
        this.model.apply(message as { [key: string]: any });
      }
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.stop();
    super.dispose();
    this.model.dispose();
  }

  private _area: OutputArea | null = null;
  private _abort: AbortController | null = null;
  private _partial = '';
  private _changed = new Signal<this, number>(this);
}
