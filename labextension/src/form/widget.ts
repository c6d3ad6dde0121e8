import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { JobsAPI, JobsAPIError, requestAPI } from '../handler';
import { IJob } from '../tokens';
import { h } from '../util';
import { Field, textInput } from './fields';
import { IFileSource, ShippedFiles } from './files';
import { ParamRows } from './params';
import { YamlPreview } from './preview';
import { fieldOf, notebookJob, paramsOf, relativeTo, Spec } from './spec';
import { NoHashing, UploadProgress, uploadFiles } from './upload';

/**
 * Create a job: a command or a notebook, the files it ships, its parameters, and where it runs
 * (instance types and datasets come from the server). The spec is shown as YAML as it is edited;
 * the server's validation errors are shown next to the fields they name.
 */
export class CreateJobForm extends Widget {
  constructor(
    private api: JobsAPI,
    private trans: TranslationBundle,
    private onCreated: (job: IJob) => void,
    source?: IFileSource
  ) {
    super();
    this.id = 'jupyter-jobs-create';
    this.addClass('jp-JobForm');
    this.title.label = trans.__('New job');
    this.title.closable = true;
    const form = h('form', 'jp-JobForm-form');
    form.setAttribute('aria-label', trans.__('New job'));
    const changed = () => this._refresh();
    this._name = this._add(form, 'name', trans.__('Name'), textInput('name', 'train'));
    this._kind = h('select', 'jp-mod-styled');
    this._kind.name = 'kind';
    for (const [value, label] of [['command', trans.__('a command')], ['notebook', trans.__('a notebook, headless')]]) {
      const option = h('option', '', label);
      option.value = value;
      this._kind.append(option);
    }
    this._add(form, 'kind', trans.__('Run'), this._kind);
    // A notebook shipped with no command yet: it is what the job runs.
    const filesChanged = () => {
      if (this._kind.value === 'command' && !this._command.value.trim() && this._shipped?.paths.some(p => p.endsWith('.ipynb'))) {
        this._kind.value = 'notebook';
      }
      this._refresh();
    };
    this._shipped = source ? new ShippedFiles(source, trans, filesChanged) : null;
    if (this._shipped) {
      this._add(form, 'inputs', trans.__('Files to ship'), this._shipped.node);
    }
    this._command = this._add(form, 'cmd', trans.__('Command'), textInput('cmd', 'python train.py --epochs 10', true),
      trans.__('Runs in the folder of the shipped files; ${NAME} is replaced by an arg.'));
    this._notebook = h('select', 'jp-mod-styled');
    this._notebook.name = 'notebook';
    this._add(form, 'notebook', trans.__('Notebook'), this._notebook, trans.__('One of the shipped notebooks; its executed copy is the job’s output.'));
    this._params = new ParamRows(trans, changed);
    this._add(form, 'args', trans.__('Parameters'), this._params.node,
      trans.__('Set in a cell after the one tagged “parameters”; a value is JSON where it parses (0.1 a number), else text.'));
    this._image = this._add(form, 'image', trans.__('Image'), textInput('image', trans.__('(the default)')));
    this._instanceType = h('select', 'jp-mod-styled');
    this._instanceType.name = 'instance-type';
    this._add(form, 'instance-type', trans.__('Instance type'), this._instanceType);
    this._datasets = h('select', 'jp-mod-styled');
    this._datasets.name = 'datasets';
    this._datasets.multiple = true;
    this._add(form, 'datasets', trans.__('Datasets'), this._datasets);
    this._env = this._add(form, 'env', trans.__('Environment'), textInput('env', 'NAME=value, one a line', true));
    this._maxRuntime = this._add(form, 'max-runtime', trans.__('Max runtime'), textInput('max-runtime', '2h'));
    this._cron = this._add(form, 'cron', trans.__('Schedule (cron)'), textInput('cron', trans.__('empty: run once; 0 3 * * *: daily at 3')));
    this._timezone = this._add(form, 'timezone', trans.__('Time zone'), textInput('timezone', trans.__("the server's, e.g. Europe/Paris")));
    this._progress = new UploadProgress(trans);
    this._submit = h('button', 'jp-Button jp-mod-styled jp-mod-accept jp-JobForm-submit', trans.__('Submit'));
    this._submit.type = 'submit';
    this._error = h('pre', 'jp-JobForm-error');
    this._error.setAttribute('role', 'alert');
    this._preview = new YamlPreview(trans);
    form.append(this._progress.node, this._submit, this._error, this._preview.node);
    form.oninput = changed;
    form.onchange = changed;
    form.onsubmit = event => {
      event.preventDefault();
      void this.submit();
    };
    this.node.append(form);
    this._refresh();
    void this._load();
  }

  private _add<T extends HTMLElement>(form: HTMLElement, key: string, label: string, control: T, hint = ''): T {
    const field = new Field(label, control, hint, key);
    this._fields.set(key, field);
    form.append(field.row);
    return control;
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
      this._refresh();
    } catch (error) {
      this._error.textContent = (error as Error).message;
    }
  }

  /** Show the fields of the kind of job chosen, list the shipped notebooks, and redraw the YAML. */
  private _refresh(): void {
    const notebook = this._kind.value === 'notebook';
    this._fields.get('cmd')!.row.hidden = notebook;
    this._fields.get('notebook')!.row.hidden = !notebook;
    this._fields.get('args')!.row.hidden = !notebook;
    const base = this._shipped?.base ?? '';
    const notebooks = (this._shipped?.paths ?? []).filter(p => p.endsWith('.ipynb')).map(p => relativeTo(base, p));
    const current = this._notebook.value;
    if (notebooks.join('\n') !== Array.from(this._notebook.options, o => o.value).join('\n')) {
      this._notebook.replaceChildren(
        ...notebooks.map(path => {
          const option = h('option', '', path);
          option.value = path;
          option.selected = path === current;
          return option;
        })
      );
    }
    this._fields.get('notebook')!.setError(
      notebook && !notebooks.length ? this.trans.__('Add a notebook (.ipynb) to the files to ship') : ''
    );
    const spec = this.spec();
    this._name.placeholder = notebook ? spec.name : 'train'; // a notebook job is named after its notebook
    this._preview.update(spec, base);
  }

  /** The spec the form describes: what the YAML shows and what is submitted. */
  spec(): Spec {
    const spec: Spec = { name: this._name.value.trim() || 'job' };
    if (this._kind.value === 'notebook') {
      const notebook = this._notebook.value;
      Object.assign(spec, notebookJob(notebook, paramsOf(this._params.rows).params));
      if (!this._name.value.trim() && notebook) {
        spec.name = notebook.replace(/^.*\//, '').replace(/\.ipynb$/, '');
      }
    } else {
      spec.cmd = this._command.value;
    }
    const inputs = this._shipped?.inputs ?? [];
    if (inputs.length) {
      spec.inputs = inputs;
    }
    if (this._instanceType.value) {
      spec['instance-type'] = this._instanceType.value;
    }
    const datasets = Array.from(this._datasets.selectedOptions).map(o => o.value);
    if (datasets.length) {
      spec.datasets = datasets;
    }
    if (this._image.value.trim()) {
      spec.image = this._image.value.trim();
    }
    const env: Spec = {};
    const vars = this._env.value.split('\n').map((l: string) => l.trim()).filter((l: string) => l);
    if (vars.length) {
      env.vars = vars;
    }
    if (this._kind.value === 'notebook') {
      env.python = 'auto'; // the server's Python and packages, those of the notebooks it runs
    }
    if (Object.keys(env).length) {
      spec.env = env;
    }
    if (this._maxRuntime.value.trim()) {
      spec['max-runtime'] = this._maxRuntime.value.trim();
    }
    return spec;
  }

  async submit(): Promise<void> {
    this._showErrors('', []);
    const bad = paramsOf(this._params.rows).bad;
    if (this._kind.value === 'notebook' && bad.length) {
      this._showErrors(this.trans.__('%1: a parameter is a Python name (letters, digits and _)', bad.join(', ')), [
        { field: 'args', message: this.trans.__('%1 is not a Python name', bad.join(', ')) }
      ]);
      return;
    }
    this._submit.disabled = true;
    try {
      if (this._cron.value.trim()) {
        await this._schedule();
      } else {
        this.onCreated(await this._submitJob(this.spec()));
      }
    } catch (error) {
      // The server's own words, next to the form and next to the fields they name: never swallowed.
      if (error instanceof JobsAPIError) {
        this._showErrors(error.message, error.errors);
      } else {
        this._showErrors(this.trans.__('Could not submit: %1', String(error)), []);
      }
    } finally {
      this._submit.disabled = false;
    }
  }

  /** Upload the shipped files the server lacks, then submit the spec with their manifest. */
  private async _submitJob(spec: Spec): Promise<IJob> {
    const shipped = this._shipped;
    if (!shipped || !shipped.paths.length) {
      this._progress.hide();
      return this.api.submit(spec);
    }
    let total = 0;
    this._progress.start();
    let files: { [path: string]: string };
    try {
      files = await uploadFiles(this.api.settings, await shipped.files(), (loaded, all, file) => {
        total = all;
        this._progress.update(loaded, all, file);
      });
    } catch (error) {
      if (error instanceof NoHashing) {
        // Not a secure context: the server copies the files from its own disk instead.
        this._progress.hide();
        return this.api.submit(spec, shipped.base);
      }
      const message = error instanceof Error ? error.message : String(error);
      this._progress.failed(this.trans.__('Upload failed: %1', message));
      const status = error instanceof JobsAPIError ? error.status : 0;
      throw new JobsAPIError(message, status, [{ field: 'inputs', message }]);
    }
    this._progress.done(total);
    return requestAPI<IJob>('jobs', { method: 'POST', body: JSON.stringify({ spec, files }) }, this.api.settings);
  }

  /** With a cron: a schedule instead of one job (its inputs read from the server's disk at every run). */
  private async _schedule(): Promise<void> {
    const made = await this.api.createSchedule(this.spec(), this._cron.value.trim(), this._timezone.value.trim(),
      this._shipped?.base ?? '');
    this._error.textContent = this.trans.__(
      'Schedule %1 created (%2, %3); next runs: %4',
      made.id,
      made.cron,
      made.timezone,
      made.next_runs.slice(0, 3).join(', ')
    );
  }

  /** The whole message under the form, and each error beside the field it names (`inputs[0].path`: files). */
  private _showErrors(message: string, errors: { field: string; message: string }[]): void {
    this._error.textContent = message;
    const byField = new Map<string, string[]>();
    for (const error of errors) {
      let key = fieldOf(error.field || '');
      if (key === 'cmd' && this._kind.value === 'notebook') {
        key = 'notebook';
      }
      if (this._fields.has(key)) {
        byField.set(key, [...(byField.get(key) ?? []), error.message]);
      }
    }
    for (const [key, field] of this._fields) {
      if (key !== 'notebook' || byField.has(key)) {
        field.setError((byField.get(key) ?? []).join('\n'));
      }
    }
  }

  private _fields = new Map<string, Field>();
  private _shipped: ShippedFiles | null;
  private _params: ParamRows;
  private _preview: YamlPreview;
  private _progress: UploadProgress;
  private _submit: HTMLButtonElement;
  private _name: HTMLInputElement;
  private _kind: HTMLSelectElement;
  private _command: HTMLTextAreaElement;
  private _notebook: HTMLSelectElement;
  private _image: HTMLInputElement;
  private _instanceType: HTMLSelectElement;
  private _datasets: HTMLSelectElement;
  private _env: HTMLTextAreaElement;
  private _maxRuntime: HTMLInputElement;
  private _cron: HTMLInputElement;
  private _timezone: HTMLInputElement;
  private _error: HTMLPreElement;
}
