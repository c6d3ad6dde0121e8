import { TranslationBundle } from '@jupyterlab/translation';

import { canOpen } from './open';
import { IOutput } from './tokens';
import { h } from './util';

/** How the list of output files is shown. */
export interface IFileListOptions {
  /** How many files to list; a button calls `more` for the rest. */
  max?: number;
  more?: () => void;
  /** Open a notebook or an image in Lab; without it, those files are only downloaded. */
  open?: (output: IOutput) => void;
}

/**
 * Download links to a job's output files, as the server offers them: each file, each folder as one
 * tar (GET /jobs/{id}/outputs/{folder}), and all of them as one tar (GET /jobs/{id}/outputs?archive=tar);
 * notebooks and images also get "Open" (in Lab).
 */
export function outputFileList(
  outputs: IOutput[],
  trans: TranslationBundle,
  { max = Infinity, more = () => undefined, open }: IFileListOptions = {}
): HTMLElement {
  const box = h('div', 'jp-JobFiles');
  const title = h('div', 'jp-JobFiles-title', trans.__('Output files'));
  const files = outputs.filter(o => o.url && !o.type);
  if (files.length > 1) {
    // Every file's URL is the outputs URL followed by its path.
    const first = files[0];
    const all = downloadLink(
      `${first.url.slice(0, first.url.length - first.path.length - 1)}?archive=tar`,
      'outputs.tar',
      trans.__('all as .tar'),
      trans.__('Download every output file as one tar archive')
    );
    all.classList.add('jp-JobFiles-all');
    title.append(' · ', all);
  }
  box.append(title);
  const list = h('ul', 'jp-JobFiles-list');
  let folder: string | null = null;
  for (const output of outputs.slice(0, max)) {
    const at = output.path.lastIndexOf('/');
    const dir = at >= 0 ? output.path.slice(0, at) : '';
    const name = output.path.slice(at + 1);
    if (dir && dir !== folder) {
      const item = h('li', 'jp-JobFiles-folder');
      const url = output.url && output.url.slice(0, output.url.length - name.length - 1);
      item.append(
        url
          ? downloadLink(url, `${dir.split('/').pop()}.tar`, `${dir}/`, trans.__('Download folder %1 as a tar archive', dir))
          : `${dir}/`
      );
      list.append(item);
    }
    folder = dir;
    const item = h('li', dir ? 'jp-JobFiles-file jp-mod-nested' : 'jp-JobFiles-file');
    if (output.url && !output.type) {
      item.append(downloadLink(output.url, name, name, trans.__('Download %1', output.path)));
      item.append(h('span', 'jp-JobFiles-size', formatSize(output.size)));
      if (open && canOpen(output)) {
        const button = h('button', 'jp-JobFiles-open', trans.__('Open'));
        button.title = trans.__('Open a copy of %1 in JupyterLab', output.path);
        button.setAttribute('aria-label', trans.__('Open %1', output.path));
        button.onclick = () => open(output);
        item.append(button);
      }
    } else {
      item.append(h('span', '', name), h('span', 'jp-JobFiles-size', trans.__('symbolic link, not served')));
    }
    list.append(item);
  }
  box.append(list);
  if (outputs.length > max) {
    const rest = h('button', 'jp-JobFiles-more', trans.__('%1 more on the job page', outputs.length - max));
    rest.onclick = more;
    box.append(rest);
  }
  return box;
}

function downloadLink(url: string, filename: string, text: string, title: string): HTMLAnchorElement {
  const link = h('a', 'jp-JobFiles-link', text);
  link.href = url;
  link.download = filename;
  link.title = title;
  return link;
}

/** "12 B", "3.4 kB", "1.2 MB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let size = bytes;
  let unit = 0;
  while (size >= 1000 && unit < units.length - 1) {
    size /= 1000;
    unit += 1;
  }
  return unit ? `${size.toFixed(1)} ${units[unit]}` : `${size} B`;
}
