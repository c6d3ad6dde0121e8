import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { JobsAPI, JobsAPIError } from './handler';
import { IInstanceType, IJob } from './tokens';
import { h } from './util';

/** A spec scalar as the spec holds it: a number stays a number, a boolean a boolean. */
export type Scalar = string | number | boolean;

/** What the rerun form shows and edits: the spec's own values, typed as the spec has them. */
export interface IRerunValues {
  cmd: string;
  args: { [name: string]: Scalar };
  instanceType: string;
  image: string;
  maxRuntime: string;
  /** Plain env vars (a secret's variable is shown, not edited: its value never reaches the browser). */
  vars: { [name: string]: string };
}

/**
 * The values of `job`'s spec the rerun form edits; where the spec left the instance type or image to the
 * server, the ones the job was given (unchanged, they are not sent, so the server's default still applies).
 */
export function rerunValues(job: Pick<IJob, 'spec' | 'instance_type' | 'image'>): IRerunValues {
  const spec = job.spec;
  const type = spec['instance-type'] ?? job.instance_type;
  const vars: { [name: string]: string } = {};
  for (const [name, value] of Object.entries(spec.env?.vars ?? {})) {
    if (typeof value !== 'object' || value === null) {
      vars[name] = String(value);
    }
  }
  return {
    cmd: String(spec.cmd ?? ''),
    args: { ...(spec.args ?? {}) },
    instanceType: Array.isArray(type) ? String(type[0] ?? '') : String(type ?? ''),
    image: String(spec.image ?? job.image ?? ''),
    maxRuntime: spec['max-runtime'] === undefined || spec['max-runtime'] === null ? '' : String(spec['max-runtime']),
    vars
  };
}

/**
 * The overrides that turn `before` into `after`: only what changed, typed as the spec types it, so a rerun
 * changes nothing else (an instance-type fallback list, a secret, an untouched arg stay as they were).
 */
export function rerunOverrides(before: IRerunValues, after: IRerunValues): { [key: string]: any } {
  const overrides: { [key: string]: any } = {};
  const args = changed(before.args, after.args);
  if (args) {
    overrides.args = args;
  }
  const vars = changed(before.vars, after.vars);
  if (vars) {
    overrides.env = { vars };
  }
  if (after.cmd.trim() !== before.cmd.trim()) {
    overrides.cmd = after.cmd.trim();
  }
  for (const [key, field] of [['instance-type', 'instanceType'], ['image', 'image'], ['max-runtime', 'maxRuntime']] as const) {
    if (after[field].trim() !== before[field].trim()) {
      overrides[key] = after[field].trim() || null; // empty: remove it (the server's default)
    }
  }
  return overrides;
}

/** The entries of `after` that differ from `before`'s, or null when none does. */
function changed<T>(before: { [name: string]: T }, after: { [name: string]: T }): { [name: string]: T } | null {
  const out: { [name: string]: T } = {};
  for (const [name, value] of Object.entries(after)) {
    if (before[name] !== value) {
      out[name] = value;
    }
  }
  return Object.keys(out).length ? out : null;
}

/** A problem the form shows: the server's message, and the field it names (`args.epochs`, `instance-type`). */
interface IFormError {
  message: string;
  fields: { field: string; message: string }[];
}

/**
 * The body of the rerun dialog: the job's args, instance type, image, max runtime and env vars, prefilled
 * and typed as the spec has them (a number input for a number, a checkbox for a boolean); the server's
 * error, when the last try was refused, at the top and beside the field it names.
 */
export class RerunForm extends Widget {
  constructor(
    private trans: TranslationBundle,
    job: IJob,
    values: IRerunValues,
    instanceTypes: IInstanceType[],
    error: IFormError | null = null
  ) {
    super();
    this.addClass('jp-JobRerunForm');
    this._values = { ...values, args: { ...values.args }, vars: { ...values.vars } };
    const problems = new Map((error?.fields ?? []).map(p => [p.field, p.message]));
    const alert = h('div', 'jp-JobRerunForm-error');
    alert.setAttribute('role', 'alert');
    alert.textContent = error?.message ?? '';
    this.node.append(
      h('p', 'jp-JobRerunForm-intro', trans.__("A new job from job #%1's spec and files; change what it should run with.", job.id)),
      alert
    );
    const what = this._group(trans.__('What it runs'));
    const cmd = this._text('cmd', trans.__('Command'), 'cmd', problems.get('cmd'));
    cmd.input.classList.add('jp-JobRerunForm-cmd');
    what.append(cmd.row);
    const names = Object.keys(values.args);
    if (names.length) {
      const group = this._group(trans.__('Arguments (${name} in the command)'));
      for (const name of names) {
        group.append(this._argRow(name, values.args[name], problems.get(`args.${name}`)));
      }
    }
    const run = this._group(trans.__('Where it runs'));
    const list = h('datalist');
    list.id = `jp-JobRerunForm-types-${job.id}`;
    list.append(...instanceTypes.map(t => Object.assign(h('option'), { value: t.name })));
    const type = this._text('instanceType', trans.__('Instance type'), 'instance-type', problems.get('instance-type'));
    type.input.setAttribute('list', list.id);
    run.append(type.row, list);
    const image = this._text('image', trans.__('Image'), 'image', problems.get('image'));
    image.input.placeholder = trans.__("empty: the backend's default");
    run.append(image.row);
    const runtime = this._text('maxRuntime', trans.__('Max runtime'), 'max-runtime', problems.get('max-runtime'));
    runtime.input.placeholder = trans.__('e.g. 2h, 30m; empty: no limit');
    run.append(runtime.row);
    const secrets = Object.entries(job.spec.env?.vars ?? {}).filter(([, v]) => typeof v === 'object' && v !== null);
    if (Object.keys(values.vars).length || secrets.length) {
      const env = this._group(trans.__('Environment variables'));
      for (const name of Object.keys(values.vars)) {
        env.append(this._varRow(name, problems.get(`env.vars.${name}`)));
      }
      for (const [name, ref] of secrets) {
        env.append(h('div', 'jp-JobRerunForm-secret', trans.__('%1: the secret %2 (kept as it is)', name, (ref as any).secret)));
      }
    }
  }

  /** The values as edited (Dialog calls it before the dialog closes). */
  getValue(): IRerunValues {
    return this._values;
  }

  /** A problem with a value as typed (a number input left empty), in the words the server would use. */
  get problem(): IFormError | null {
    return this._problem.size
      ? { message: [...this._problem.values()].join('; '), fields: [...this._problem].map(([field, message]) => ({ field, message })) }
      : null;
  }

  private _group(legend: string): HTMLFieldSetElement {
    const group = h('fieldset', 'jp-JobRerunForm-group');
    group.append(h('legend', '', legend));
    this.node.append(group);
    return group;
  }

  private _row(field: string, label: string, input: HTMLInputElement, problem?: string): HTMLDivElement {
    const row = h('div', 'jp-JobRerunForm-row');
    const id = `jp-JobRerunForm-${field.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    input.id = id;
    input.dataset.field = field;
    const text = h('label', '', label);
    text.htmlFor = id;
    row.append(text, input);
    if (problem) {
      const note = h('div', 'jp-JobRerunForm-fieldError', problem);
      note.id = `${id}-error`;
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', note.id);
      row.append(note);
    }
    return row;
  }

  private _argRow(name: string, value: Scalar, problem?: string): HTMLDivElement {
    const input = h('input', 'jp-mod-styled');
    const field = `args.${name}`;
    if (typeof value === 'boolean') {
      input.type = 'checkbox';
      input.checked = value;
      input.onchange = () => (this._values.args[name] = input.checked);
    } else if (typeof value === 'number') {
      input.type = 'number';
      input.step = 'any';
      input.value = String(value);
      input.oninput = () => {
        const number = input.valueAsNumber;
        if (input.value.trim() === '' || !Number.isFinite(number)) {
          this._problem.set(field, this.trans.__('%1: write a number (it is one in the spec)', field));
        } else {
          this._problem.delete(field);
          this._values.args[name] = number;
        }
      };
    } else {
      input.type = 'text';
      input.value = value;
      input.oninput = () => (this._values.args[name] = input.value);
    }
    return this._row(field, name, input, problem);
  }

  private _text(key: 'cmd' | 'instanceType' | 'image' | 'maxRuntime', label: string, field: string, problem?: string) {
    const input = h('input', 'jp-mod-styled');
    input.type = 'text';
    input.value = this._values[key];
    input.oninput = () => (this._values[key] = input.value);
    return { row: this._row(field, label, input, problem), input };
  }

  private _varRow(name: string, problem?: string): HTMLDivElement {
    const input = h('input', 'jp-mod-styled');
    input.type = 'text';
    input.value = this._values.vars[name];
    input.oninput = () => (this._values.vars[name] = input.value);
    return this._row(`env.vars.${name}`, name, input, problem);
  }

  private _values: IRerunValues;
  private _problem = new Map<string, string>();
}

/** The server's refusal as the form shows it: its message, and the fields it names. */
function formError(error: unknown): IFormError {
  if (error instanceof JobsAPIError) {
    return { message: error.message, fields: error.errors.map(e => ({ field: e.field.replace(/^overrides\./, ''), message: e.message })) };
  }
  return { message: error instanceof Error ? error.message : String(error), fields: [] };
}

/**
 * Rerun `job` through a form that shows what it reruns; the server validates the values before any job
 * exists, and a refusal reopens the form with the values as typed and the server's error. Answers the new
 * job, or null when the user gave up.
 */
export async function rerunJob(api: JobsAPI, trans: TranslationBundle, job: IJob): Promise<IJob | null> {
  const before = rerunValues(job);
  const types = await api.instanceTypes().catch(() => [] as IInstanceType[]);
  let values = before;
  let error: IFormError | null = null;
  for (;;) {
    const form: RerunForm = new RerunForm(trans, job, values, types, error);
    const result = await showDialog<IRerunValues>({
      title: trans.__("Rerun job #%1 '%2'", job.id, job.name),
      body: form,
      buttons: [Dialog.cancelButton({ label: trans.__('Cancel') }), Dialog.okButton({ label: trans.__('Rerun') })],
      // After a refusal, the field the server named (querySelector takes the first of a list in document order).
      focusNodeSelector: form.node.querySelector('input[aria-invalid="true"]') ? 'input[aria-invalid="true"]' : 'input'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    values = result.value;
    error = form.problem;
    if (error) {
      continue;
    }
    try {
      return await api.rerun(job.id, rerunOverrides(before, values));
    } catch (caught) {
      error = formError(caught);
    }
  }
}
