import { TranslationBundle } from '@jupyterlab/translation';

import { h } from '../util';
import { IParam, PARAM_NAME } from './spec';

/**
 * A notebook's parameters as name/value rows (as jupyter-scheduler has them). A value is read as the
 * CLI's `--param` reads it: JSON where it parses (0.1 a number), else text.
 */
export class ParamRows {
  readonly node: HTMLElement;

  constructor(
    private trans: TranslationBundle,
    private changed: () => void
  ) {
    this.node = h('div', 'jp-JobForm-params');
    this._rows = h('div', 'jp-JobForm-paramRows');
    const add = h('button', 'jp-Button jp-mod-styled jp-mod-reject jp-JobForm-addParam', trans.__('Add parameter'));
    add.type = 'button';
    add.onclick = () => {
      this.add();
      this._rows.querySelector<HTMLInputElement>('.jp-JobForm-paramRow:last-child input')?.focus();
    };
    this.node.append(this._rows, add);
  }

  add(name = '', value = ''): void {
    const index = this._rows.children.length + 1;
    const row = h('div', 'jp-JobForm-paramRow');
    const nameInput = h('input', 'jp-mod-styled jp-JobForm-paramName');
    nameInput.name = `param-name-${index}`;
    nameInput.placeholder = 'lr';
    nameInput.value = name;
    nameInput.setAttribute('aria-label', this.trans.__('Name of parameter %1', index));
    const valueInput = h('input', 'jp-mod-styled jp-JobForm-paramValue');
    valueInput.name = `param-value-${index}`;
    valueInput.placeholder = '0.1';
    valueInput.value = value;
    valueInput.setAttribute('aria-label', this.trans.__('Value of parameter %1', index));
    const remove = h('button', 'jp-Button jp-mod-minimal jp-JobForm-removeParam', '×');
    remove.type = 'button';
    remove.setAttribute('aria-label', this.trans.__('Remove parameter %1', index));
    remove.onclick = () => {
      row.remove();
      this.changed();
    };
    const check = () => {
      const bad = nameInput.value.trim() !== '' && !PARAM_NAME.test(nameInput.value.trim());
      nameInput.setAttribute('aria-invalid', String(bad));
      nameInput.title = bad ? this.trans.__('A parameter is a Python name: letters, digits and _, not first a digit') : '';
    };
    nameInput.oninput = () => {
      check();
      this.changed();
    };
    valueInput.oninput = () => this.changed();
    row.append(nameInput, h('span', 'jp-JobForm-paramEquals', '='), valueInput, remove);
    this._rows.append(row);
    check();
    this.changed();
  }

  get rows(): IParam[] {
    return Array.from(this._rows.querySelectorAll('.jp-JobForm-paramRow'), row => ({
      name: row.querySelector<HTMLInputElement>('.jp-JobForm-paramName')!.value,
      value: row.querySelector<HTMLInputElement>('.jp-JobForm-paramValue')!.value
    }));
  }

  private _rows: HTMLElement;
}
