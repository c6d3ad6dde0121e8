import type { IDocumentManager } from '@jupyterlab/docmanager';
import { FileDialog } from '@jupyterlab/filebrowser';
import { Contents } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';

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
}

/** Folders never shipped from inside a chosen folder (the CLI's ignore rules skip them too). */
const SKIPPED = new Set(['__pycache__', '.ipynb_checkpoints', '.git']);

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
    this._summary.setAttribute('aria-live', 'polite');
    this.node.append(buttons, this._list, this._summary);
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

  /** Every file that ships: a chosen folder's files, listed through the Lab's contents. */
  async files(): Promise<IShippedFile[]> {
    const base = this.base;
    const found: IShippedFile[] = [];
    const walk = async (path: string): Promise<void> => {
      let model: Contents.IModel;
      try {
        model = await this.source.contents.get(path, { content: true });
      } catch (error) {
        throw new Error(this.trans.__('could not read %1 from the Lab (%2)', path, (error as Error).message));
      }
      if (model.type !== 'directory') {
        found.push({ path: relativeTo(base, path), source: path });
        return;
      }
      for (const item of model.content as Contents.IModel[]) {
        if (!SKIPPED.has(item.name) && !item.name.endsWith('.pyc')) {
          await walk(item.path);
        }
      }
    };
    for (const path of this._paths) {
      await walk(path);
    }
    return found;
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
          'Ships %1 from %2 (their common folder): the job starts in a folder holding them at the same paths, as its inputs. Files are uploaded once; an unchanged file is not sent again.',
          this.inputs.join(', '),
          base
        )
      : this.trans.__('Nothing is shipped: the job sees only its datasets and image. Add the scripts, notebooks and data it reads.');
  }

  private _paths: string[] = [];
  private _list: HTMLUListElement;
  private _summary: HTMLElement;
}
