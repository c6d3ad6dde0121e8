import { Clipboard } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { dump } from 'js-yaml';

import { h } from '../util';
import { Spec } from './spec';

/** The spec the form will submit, as YAML to paste into a job.yaml, with a Copy button. */
export class YamlPreview {
  readonly node: HTMLElement;

  constructor(private trans: TranslationBundle) {
    this.node = h('section', 'jp-JobForm-preview');
    const title = h('h3', 'jp-JobForm-previewTitle', trans.__('The spec it submits (job.yaml)'));
    title.id = `jp-JobForm-previewTitle-${Math.random().toString(36).slice(2)}`;
    this.node.setAttribute('aria-labelledby', title.id);
    const copy = h('button', 'jp-Button jp-mod-styled jp-mod-reject jp-JobForm-copy', trans.__('Copy'));
    copy.type = 'button';
    copy.setAttribute('aria-label', trans.__('Copy the spec as YAML'));
    copy.onclick = () => {
      Clipboard.copyToSystem(this.text);
      copy.textContent = trans.__('Copied');
      setTimeout(() => (copy.textContent = trans.__('Copy')), 1500);
    };
    const head = h('div', 'jp-JobForm-previewHead');
    head.append(title, copy);
    this._code = h('pre', 'jp-JobForm-yaml');
    this._code.tabIndex = 0; // scrollable by keyboard
    this._code.setAttribute('aria-label', trans.__('The spec as YAML (read-only)'));
    this._note = h('div', 'jp-JobForm-hint');
    this.node.append(head, this._code, this._note);
  }

  get text(): string {
    return this._code.textContent ?? '';
  }

  update(spec: Spec, base: string): void {
    this._code.textContent = dump(spec, { lineWidth: -1, noRefs: true });
    this._note.textContent = spec.inputs?.length
      ? this.trans.__(
          'Saved as job.yaml in %1, `jupyter jobs run job.yaml` ships the same inputs and submits the same job.',
          base || this.trans.__('the Lab’s root folder')
        )
      : this.trans.__('Saved as job.yaml, `jupyter jobs run job.yaml` submits the same job.');
  }

  private _code: HTMLPreElement;
  private _note: HTMLElement;
}
