import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { JobsAPI, JobsAPIError } from './handler';
import { IJob } from './tokens';
import { h } from './util';

/** Create a job: instance types and datasets come from the server; its validation message is shown. */
export class CreateJobForm extends Widget {
  constructor(
    private api: JobsAPI,
    private trans: TranslationBundle,
    private onCreated: (job: IJob) => void
  ) {
    super();
    this.id = 'jupyter-jobs-create';
    this.addClass('jp-JobForm');
    this.title.label = trans.__('New job');
    this.title.closable = true;
    const form = h('form', 'jp-JobForm-form');
    this._name = this._input(form, 'name', trans.__('Name'), 'train');
    this._command = this._input(form, 'cmd', trans.__('Command'), 'python train.py --epochs 10', true);
    this._image = this._input(form, 'image', trans.__('Image'), trans.__('(the default)'));
    this._instanceType = h('select', 'jp-mod-styled');
    this._instanceType.name = 'instance-type';
    this._field(form, trans.__('Instance type'), this._instanceType);
    this._datasets = h('select', 'jp-mod-styled');
    this._datasets.name = 'datasets';
    this._datasets.multiple = true;
    this._field(form, trans.__('Datasets'), this._datasets);
    this._env = this._input(form, 'env', trans.__('Environment'), 'NAME=value, one a line', true);
    this._maxRuntime = this._input(form, 'max-runtime', trans.__('Max runtime'), '2h');
    this._cron = this._input(form, 'cron', trans.__('Schedule (cron)'), trans.__('empty: run once; 0 3 * * *: daily at 3'));
    this._timezone = this._input(form, 'timezone', trans.__('Time zone'), trans.__("the server's, e.g. Europe/Paris"));
    const submit = h('button', 'jp-Button jp-mod-styled jp-mod-accept jp-JobForm-submit', trans.__('Submit'));
    submit.type = 'submit';
    this._error = h('pre', 'jp-JobForm-error');
    form.append(submit, this._error);
    form.onsubmit = event => {
      event.preventDefault();
      void this.submit();
    };
    this.node.append(form);
    void this._load();
  }

  private _input(form: HTMLElement, name: string, label: string, placeholder: string, area = false): any {
    const input = area ? h('textarea', 'jp-mod-styled') : h('input', 'jp-mod-styled');
    input.name = name;
    input.placeholder = placeholder;
    this._field(form, label, input);
    return input;
  }

  private _field(form: HTMLElement, label: string, input: HTMLElement): void {
    const row = h('label', 'jp-JobForm-row');
    row.append(h('span', 'jp-JobForm-label', label), input);
    form.append(row);
  }

  private async _load(): Promise<void> {
    try {
      const [types, datasets] = await Promise.all([this.api.instanceTypes(), this.api.datasets()]);
      this._instanceType.replaceChildren(
        ...types.map(t => {
          const option = h('option', '', `${t.name} — ${t.description || `${t.cpus} CPU, ${t.gpus} GPU`}`);
          option.value = t.name;
          option.selected = t.default;
          return option;
        })
      );
      this._datasets.replaceChildren(
        ...datasets.map(d => {
          const option = h('option', '', d.name);
          option.value = d.name;
          option.title = d.description || d.path;
          return option;
        })
      );
    } catch (error) {
      this._error.textContent = (error as Error).message;
    }
  }

  /** The spec the form describes. */
  spec(): { [key: string]: any } {
    const spec: { [key: string]: any } = {
      name: this._name.value.trim() || 'job',
      cmd: this._command.value,
      'instance-type': this._instanceType.value
    };
    const datasets = Array.from(this._datasets.selectedOptions).map(o => o.value);
    if (datasets.length) {
      spec.datasets = datasets;
    }
    if (this._image.value.trim()) {
      spec.image = this._image.value.trim();
    }
    const env = this._env.value.split('\n').map((l: string) => l.trim()).filter((l: string) => l);
    if (env.length) {
      spec.env = { vars: env };
    }
    if (this._maxRuntime.value.trim()) {
      spec['max-runtime'] = this._maxRuntime.value.trim();
    }
    return spec;
  }

  async submit(): Promise<void> {
    this._error.textContent = '';
    if (this._cron.value.trim()) {
      await this._schedule();
      return;
    }
    try {
      const job = await this.api.submit(this.spec());
      this.onCreated(job);
    } catch (error) {
      // The server's own words, next to the form: never swallowed.
      this._error.textContent =
        error instanceof JobsAPIError ? error.message : this.trans.__('Could not submit: %1', String(error));
    }
  }

  /** With a cron: a schedule instead of one job; the form then says when it runs next. */
  private async _schedule(): Promise<void> {
    try {
      const made = await this.api.createSchedule(this.spec(), this._cron.value.trim(), this._timezone.value.trim());
      this._error.textContent = this.trans.__(
        'Schedule %1 created (%2, %3); next runs: %4',
        made.id,
        made.cron,
        made.timezone,
        made.next_runs.slice(0, 3).join(', ')
      );
    } catch (error) {
      this._error.textContent =
        error instanceof JobsAPIError ? error.message : this.trans.__('Could not schedule: %1', String(error));
    }
  }

  private _name: HTMLInputElement;
  private _command: HTMLTextAreaElement;
  private _image: HTMLInputElement;
  private _instanceType: HTMLSelectElement;
  private _datasets: HTMLSelectElement;
  private _env: HTMLTextAreaElement;
  private _maxRuntime: HTMLInputElement;
  private _cron: HTMLInputElement;
  private _timezone: HTMLInputElement;
  private _error: HTMLPreElement;
}
