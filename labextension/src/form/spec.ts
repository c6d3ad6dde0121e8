import { PathExt } from '@jupyterlab/coreutils';

/** A spec as the user would write it in a job.yaml (the server's YAML keys). */
export type Spec = { [key: string]: any };

/** One name/value row of a notebook's parameters. */
export interface IParam {
  name: string;
  value: string;
}

/** A parameter's name: a Python name, which is also a spec arg's name (letters, digits and _). */
export const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A parameter's value as `%job run nb.ipynb --param` and `jupyter jobs run --param` read it:
 * JSON where it parses (`3` a number, `true` a boolean, `"3"` the text 3), else the text as typed.
 */
export function readValue(text: string): any {
  const trimmed = text.trim();
  if (!trimmed) {
    return '';
  }
  try {
    return JSON.parse(trimmed);
  } catch {
    return text;
  }
}

/**
 * The folder the chosen paths are shipped from: their deepest common folder ('' is the Lab's root).
 * A chosen folder counts as its own parent's child, so shipping `data/` alone ships it as `data/...`.
 */
export function commonFolder(paths: string[]): string {
  if (!paths.length) {
    return '';
  }
  const parts = paths.map(p => PathExt.dirname(p).split('/').filter(s => s));
  const common: string[] = [];
  for (let i = 0; i < parts[0].length; i++) {
    if (parts.every(p => p[i] === parts[0][i])) {
      common.push(parts[0][i]);
    } else {
      break;
    }
  }
  return common.join('/');
}

/** `path` relative to `folder` (both Lab paths, '' the root). */
export function relativeTo(folder: string, path: string): string {
  return folder ? path.slice(folder.length + 1) : path;
}

/** A word the job's shell reads as itself. */
function quote(word: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * How a notebook runs as a job (as `%job run nb.ipynb --param ...` and "Run as Job" do): headless, the
 * executed copy kept as an output. Each parameter is a spec arg, passed as `-p NAME=${NAME}`, so it
 * keeps its JSON type in the spec and a rerun can change it.
 */
export function notebookJob(notebook: string, params: { [name: string]: any }): Spec {
  const stem = PathExt.basename(notebook, '.ipynb');
  const executed = `${stem}.executed.ipynb`;
  const flags = Object.keys(params).map(name => ` -p ${name}=\${${name}}`).join('');
  const spec: Spec = {
    cmd: `python -m jupyter_jobs_jobside.notebook ${quote(notebook)} "$JOB_OUTPUTS/${executed}"${flags}`,
    outputs: [executed]
  };
  if (Object.keys(params).length) {
    spec.args = params;
  }
  return spec;
}

/** The parameters of rows with a name, typed; the names that are not Python names, apart. */
export function paramsOf(rows: IParam[]): { params: { [name: string]: any }; bad: string[] } {
  const params: { [name: string]: any } = {};
  const bad: string[] = [];
  for (const row of rows) {
    const name = row.name.trim();
    if (!name) {
      continue;
    }
    if (!PARAM_NAME.test(name)) {
      bad.push(name);
      continue;
    }
    params[name] = readValue(row.value);
  }
  return { params, bad };
}

/** The form's field an error of the server's belongs to: `inputs[0].path` → `inputs`, `args.lr` → `args`. */
export function fieldOf(path: string): string {
  return path.split(/[.[]/)[0];
}
