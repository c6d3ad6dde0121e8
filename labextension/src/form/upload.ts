import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { TranslationBundle } from '@jupyterlab/translation';

import { formatSize } from '../files';
import { JobsAPIError, requestAPI } from '../handler';
import { h } from '../util';
import { IShippedFile } from './files';

/** The browser cannot hash (no `crypto.subtle` outside a secure context, e.g. plain http to a remote host). */
export class NoHashing extends Error {}

/** Where an upload stands: bytes sent of those to send, and the file being sent. */
export type OnProgress = (loaded: number, total: number, file: string) => void;

/**
 * Ship files as `jupyter jobs run` does: each file as a blob under its SHA-256, only those the server
 * lacks (POST /blobs/missing), each PUT with its progress reported. Returns the manifest
 * `{path in the job's folder: sha256}` that POST /jobs takes as `files`.
 */
export async function uploadFiles(
  settings: ServerConnection.ISettings,
  files: IShippedFile[],
  onProgress: OnProgress
): Promise<{ [path: string]: string }> {
  if (!globalThis.crypto?.subtle) {
    throw new NoHashing('no crypto.subtle');
  }
  const read = await Promise.all(files.map(async file => ({ ...file, blob: await fetchFile(settings, file.source) })));
  const hashed = await Promise.all(read.map(async file => ({ ...file, sha256: await sha256(file.blob) })));
  const { missing } = await requestAPI<{ missing: string[] }>(
    'blobs/missing',
    { method: 'POST', body: JSON.stringify({ hashes: hashed.map(f => f.sha256) }) },
    settings
  );
  const wanted = new Set(missing);
  const sending = hashed.filter(f => wanted.delete(f.sha256)); // each blob once, even if two files share it
  const total = sending.reduce((sum, f) => sum + f.blob.size, 0);
  let done = 0;
  onProgress(0, total, sending[0]?.source ?? '');
  for (const file of sending) {
    await putBlob(settings, file.sha256, file.blob, loaded => onProgress(done + loaded, total, file.source), file.source);
    done += file.blob.size;
    onProgress(done, total, file.source);
  }
  const manifest: { [path: string]: string } = {};
  for (const file of hashed) {
    manifest[file.path] = file.sha256;
  }
  return manifest;
}

async function fetchFile(settings: ServerConnection.ISettings, path: string): Promise<Blob> {
  const url = URLExt.join(settings.baseUrl, 'files', URLExt.encodeParts(path));
  const response = await ServerConnection.makeRequest(url, { cache: 'no-store' }, settings);
  if (!response.ok) {
    throw new JobsAPIError(`could not read ${path} from the Lab (${response.status} ${response.statusText})`, response.status);
  }
  return response.blob();
}

async function sha256(blob: Blob): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, '0')).join('');
}

/** PUT one blob with XMLHttpRequest, whose upload events (unlike fetch's) report progress. */
function putBlob(
  settings: ServerConnection.ISettings,
  digest: string,
  blob: Blob,
  onLoaded: (loaded: number) => void,
  name: string
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', URLExt.join(settings.baseUrl, 'jupyter-jobs', 'api', 'blobs', digest));
    // What ServerConnection.makeRequest sends: the token, and the XSRF cookie for a write.
    if (settings.token) {
      xhr.setRequestHeader('Authorization', `token ${settings.token}`);
    }
    const xsrf = document.cookie.match('\\b_xsrf=([^;]*)\\b');
    if (xsrf) {
      xhr.setRequestHeader('X-XSRFToken', xsrf[1]);
    }
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = event => onLoaded(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve();
        return;
      }
      let message = xhr.statusText;
      try {
        message = JSON.parse(xhr.responseText).message || message;
      } catch {
        // not JSON: the status says it
      }
      reject(new JobsAPIError(`could not upload ${name}: ${message}`, xhr.status));
    };
    xhr.onerror = () => reject(new JobsAPIError(`could not upload ${name}: the connection failed`, 0));
    xhr.send(blob);
  });
}

/** The form's upload progress: a labelled <progress> and what it means in words. */
export class UploadProgress {
  readonly node: HTMLElement;

  constructor(private trans: TranslationBundle) {
    this.node = h('div', 'jp-JobForm-upload');
    this.node.hidden = true;
    this._bar = h('progress', 'jp-JobForm-progress');
    this._bar.setAttribute('aria-label', trans.__('Upload progress'));
    this._text = h('div', 'jp-JobForm-uploadText');
    this._text.setAttribute('role', 'status');
    this.node.append(this._bar, this._text);
  }

  start(): void {
    this.node.hidden = false;
    this.node.dataset.state = 'reading';
    this._bar.removeAttribute('value'); // indeterminate while files are read and hashed
    this._text.textContent = this.trans.__('Reading and hashing the files…');
  }

  update(loaded: number, total: number, file: string): void {
    this.node.dataset.state = 'uploading';
    this._bar.max = Math.max(total, 1);
    this._bar.value = total ? loaded : 1;
    this._text.textContent = total
      ? this.trans.__('Uploading %1: %2 of %3', file, formatSize(loaded), formatSize(total))
      : this.trans.__('The server has every file already: nothing to upload');
  }

  done(total: number): void {
    this.node.dataset.state = 'done';
    this._bar.max = Math.max(total, 1);
    this._bar.value = this._bar.max;
    this._text.textContent = total
      ? this.trans.__('Uploaded %1', formatSize(total))
      : this.trans.__('The server has every file already: nothing to upload');
  }

  failed(message: string): void {
    this.node.dataset.state = 'failed';
    this._text.textContent = message;
  }

  hide(): void {
    this.node.hidden = true;
  }

  private _bar: HTMLProgressElement;
  private _text: HTMLElement;
}
