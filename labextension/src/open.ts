import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { Contents } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';

import { JobsAPI } from './handler';
import { IOutput } from './tokens';

/** Outputs that Lab opens itself: notebooks, and images (its image viewer). */
const OPENABLE = /\.(ipynb|png|jpe?g|gif|svg|webp)$/i;

/** Where Lab keeps the copy of a job's output, at the root of its file browser. */
export const OUTPUTS_FOLDER = 'job-outputs';

export function canOpen(output: IOutput): boolean {
  return !output.type && OPENABLE.test(output.path);
}

/**
 * Open a job's output in Lab: copy it to `job-outputs/<id>/<path>` through the contents API (asking
 * before replacing a file there), then open it with the document manager: a notebook as a notebook,
 * an image in the image viewer.
 */
export async function openOutput(
  app: JupyterFrontEnd,
  api: JobsAPI,
  trans: TranslationBundle,
  jobId: number,
  output: IOutput
): Promise<void> {
  const target = `${OUTPUTS_FOLDER}/${jobId}/${output.path}`;
  const contents = app.serviceManager.contents;
  try {
    if (await exists(contents, target)) {
      const choice = await showDialog({
        title: trans.__('Replace %1?', target),
        body: trans.__('A copy of this output is already in %1; it may have been edited since.', target),
        buttons: [
          Dialog.cancelButton({ label: trans.__('Cancel') }),
          Dialog.okButton({ label: trans.__('Open that copy'), displayType: 'default' }),
          Dialog.warnButton({ label: trans.__('Replace') })
        ],
        defaultButton: 1
      });
      if (choice.button.label === trans.__('Replace')) {
        await save(contents, api, jobId, output, target);
      } else if (!choice.button.accept) {
        return;
      }
    } else {
      await makeFolders(contents, PathExt.dirname(target));
      await save(contents, api, jobId, output, target);
    }
    await app.commands.execute('docmanager:open', { path: target });
  } catch (error) {
    await showErrorMessage(trans.__('Could not open %1', output.path), (error as Error).message);
  }
}

async function save(contents: Contents.IManager, api: JobsAPI, jobId: number, output: IOutput, target: string) {
  const bytes = await api.outputFile(jobId, output.path);
  if (/\.ipynb$/i.test(target)) {
    const notebook = JSON.parse(new TextDecoder().decode(bytes));
    untrust(notebook);
    await contents.save(target, { type: 'notebook', format: 'json', content: notebook });
  } else {
    await contents.save(target, { type: 'file', format: 'base64', content: base64(bytes) });
  }
}

/**
 * A job wrote this notebook, so it is not trusted: the server signs a saved notebook whose cells all
 * say `metadata.trusted` (nbformat's NotebookNotary.check_cells), so that mark goes.
 */
function untrust(notebook: any): void {
  for (const cell of Array.isArray(notebook?.cells) ? notebook.cells : []) {
    if (cell && typeof cell.metadata === 'object' && cell.metadata) {
      delete cell.metadata.trusted;
    }
  }
}

async function exists(contents: Contents.IManager, path: string): Promise<boolean> {
  try {
    await contents.get(path, { content: false });
    return true;
  } catch (error) {
    if ((error as any)?.response?.status === 404) {
      return false;
    }
    throw error;
  }
}

/** Create `path` and the folders above it that are missing. */
async function makeFolders(contents: Contents.IManager, path: string): Promise<void> {
  let at = '';
  for (const part of path.split('/').filter(p => p)) {
    at = at ? `${at}/${part}` : part;
    if (!(await exists(contents, at))) {
      await contents.save(at, { type: 'directory' });
    }
  }
}

function base64(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}
