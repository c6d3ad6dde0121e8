import type { IDocumentManager } from '@jupyterlab/docmanager';
import { FileDialog } from '@jupyterlab/filebrowser';
import { Contents } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';

import { formatSize } from '../files';
import { h } from '../util';
import { commonFolder, relativeTo } from './spec';

/** Where the form finds files: the Lab's contents, its file browser's selection and the file dialog. */
export interface IFileSource {
  contents: Contents.IManager;
  /** The paths selected in the file browser now. */
  selection?: () => string[];
  /** The file browser's document manager, for the file dialog. */
  manager?: () => IDocumentManager | undefined;
}

/** One file a job ships: its path in the job's folder and in the Lab. */
export interface IShippedFile {
  path: string;
  source: string;
  size: number;
}

/**
 * What is never shipped from inside a chosen folder: the CLI's default ignores
 * (`DEFAULT_IGNORES` in jupyter_jobs/kernel/packaging.py). A folder's .gitignore and .jobignore,
 * which the CLI also reads, are not applied here.
 */
const SKIPPED_FOLDERS = new Set([
  '.git', '__pycache__', '.ipynb_checkpoints', '.venv', 'venv', 'env', '.env', 'node_modules',
  '.mypy_cache', '.pytest_cache', '.tox'
]);

function skipped(item: Contents.IModel): boolean {
  if (item.type === 'directory') {
    return SKIPPED_FOLDERS.has(item.name) || item.name.endsWith('.egg-info');
  }
  return item.name.endsWith('.pyc') || item.name === '.DS_Store';
}

/**
 * The files and folders a job ships, chosen from the Lab (the file dialog or the file browser's
 * selection) and listed, each removable. As with `jupyter jobs run` and `%job run`, they are the
 * spec's `inputs`, relative to one folder (here their common folder); the job starts in a folder
 * that holds them at those same paths.
 */
export class ShippedFiles {
  readonly node: HTMLElement;

  constructor(
    private source: IFileSource,
    private trans: TranslationBundle,
    private changed: () => void
  ) {
    this.node = h('div', 'jp-JobForm-files');
    const buttons = h('div', 'jp-JobForm-buttons');
    const add = h('button', 'jp-Button jp-mod-styled jp-mod-reject jp-JobForm-addFiles', trans.__('Add files…'));
    add.type = 'button';
    add.title = trans.__('Choose files or folders in the Lab to ship with the job');
    add.onclick = () => void this._choose();
    const selected = h('button', 'jp-Button jp-mod-styled jp-mod-reject jp-JobForm-addSelection', trans.__('Add the file browser’s selection'));
    selected.type = 'button';
    selected.onclick = () => this.add(this.source.selection?.() ?? []);
    if (source.manager) {
      buttons.append(add);
    }
    if (source.selection) {
      buttons.append(selected);
    }
    this._list = h('ul', 'jp-JobForm-fileList');
    this._list.setAttribute('aria-label', trans.__('Files to ship'));
    this._summary = h('div', 'jp-JobForm-hint jp-JobForm-shipSummary');
    this._count_ = h('span', 'jp-JobForm-shipCount');
    const said = h('div', 'jp-JobForm-hint');
    said.setAttribute('aria-live', 'polite');
    said.append(this._summary, this._count_);
    this.node.append(buttons, this._list, said);
    this._render();
  }

  /** The chosen Lab paths, in the order chosen. */
  get paths(): string[] {
    return [...this._paths];
  }

  /** The folder they ship from ('' is the Lab's root). */
  get base(): string {
    return commonFolder(this._paths);
  }

  /** The spec's `inputs`: the chosen paths, relative to their common folder. */
  get inputs(): string[] {
    const base = this.base;
    return this._paths.map(p => relativeTo(base, p));
  }

  add(paths: string[]): void {
    for (const path of paths.map(p => p.replace(/^\/+|\/+$/g, ''))) {
      // A path inside a chosen folder ships with it already.
      if (path && !this._paths.some(p => p === path || path.startsWith(`${p}/`))) {
        this._paths = this._paths.filter(p => !p.startsWith(`${path}/`));
        this._paths.push(path);
      }
    }
    this._render();
    this.changed();
  }

  remove(path: string): void {
    this._paths = this._paths.filter(p => p !== path);
    this._render();
    this.changed();
  }

  /**
   * Every file that ships, with its size: a chosen folder's files, listed through the Lab's contents
   * (never their content: the upload reads each file once, raw).
   */
  async files(): Promise<IShippedFile[]> {
    const base = this.base;
    const found: IShippedFile[] = [];
    const get = async (path: string, content: boolean): Promise<Contents.IModel> => {
      try {
        return await this.source.contents.get(path, { content });
      } catch (error) {
        throw new Error(this.trans.__('could not read %1 from the Lab (%2)', path, (error as Error).message));
      }
    };
    const walk = async (model: Contents.IModel): Promise<void> => {
      if (model.type !== 'directory') {
        found.push({ path: relativeTo(base, model.path), source: model.path, size: model.size ?? 0 });
        return;
      }
      const listing = await get(model.path, true);
      for (const item of listing.content as Contents.IModel[]) {
        if (!skipped(item)) {
          await walk(item);
        }
      }
    };
    for (const path of this._paths) {
      await walk(await get(path, false));
    }
    return found;
  }

  /** Say how many files and bytes ship, once the chosen folders are listed (the latest choice wins). */
  private async _count(): Promise<void> {
    const generation = ++this._generation;
    let text: string;
    try {
      const files = await this.files();
      const bytes = files.reduce((sum, f) => sum + f.size, 0);
      text = this.trans._n(
        '%1 file, %2, uploaded on Submit (an unchanged file is not sent again).',
        '%1 files, %2, uploaded on Submit (an unchanged file is not sent again).',
        files.length,
        formatSize(bytes)
      );
    } catch (error) {
      text = (error as Error).message;
    }
    if (generation === this._generation) {
      this._count_.textContent = text;
    }
  }

  private async _choose(): Promise<void> {
    const manager = this.source.manager?.();
    if (!manager) {
      return;
    }
    const result = await FileDialog.getOpenFiles({
      manager,
      title: this.trans.__('Files to ship with the job')
    });
    if (result.button.accept && result.value) {
      this.add(result.value.map(model => model.path));
    }
  }

  private _render(): void {
    this._list.replaceChildren(
      ...this._paths.map(path => {
        const item = h('li', 'jp-JobForm-file');
        item.dataset.path = path;
        const remove = h('button', 'jp-Button jp-mod-minimal jp-JobForm-removeFile', '×');
        remove.type = 'button';
        remove.setAttribute('aria-label', this.trans.__('Remove %1', path));
        remove.title = this.trans.__('Do not ship %1', path);
        remove.onclick = () => this.remove(path);
        item.append(h('span', 'jp-JobForm-filePath', path), remove);
        return item;
      })
    );
    const base = this.base || this.trans.__('the Lab’s root folder');
    this._summary.textContent = this._paths.length
      ? this.trans.__(
          'Ships %1 from %2 (their common folder): the job starts in a folder holding them at the same paths, as its inputs. ',
          this.inputs.join(', '),
          base
        )
      : this.trans.__('Nothing is shipped: the job sees only its datasets and image. Add the scripts, notebooks and data it reads.');
    this._count_.textContent = '';
    if (this._paths.length) {
      void this._count();
    } else {
      this._generation += 1;
    }
  }

  private _paths: string[] = [];
  private _generation = 0;
  private _count_: HTMLElement;
  private _list: HTMLUListElement;
  private _summary: HTMLElement;
}
