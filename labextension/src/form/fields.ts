import { h } from '../util';

let counter = 0;

/** A unique id for `for`/`aria-describedby` links (several forms may be open over a session). */
export function uid(stem: string): string {
  counter += 1;
  return `jp-JobForm-${stem}-${counter}`;
}

/**
 * One labelled row of the form: its label, the control, a hint, and a slot for the server's error about
 * this field (linked with aria-describedby, the control marked aria-invalid while it has one).
 */
export class Field {
  readonly row: HTMLElement;
  readonly error: HTMLElement;

  constructor(
    label: string,
    readonly control: HTMLElement,
    hint = '',
    readonly key = ''
  ) {
    this.row = h('div', 'jp-JobForm-row');
    if (key) {
      this.row.dataset.field = key;
    }
    const body = h('div', 'jp-JobForm-control');
    const focusable = isLabelable(control) ? control : null;
    let labelNode: HTMLElement;
    if (focusable) {
      const forControl = h('label', 'jp-JobForm-label', label);
      focusable.id = focusable.id || uid('control');
      forControl.htmlFor = focusable.id;
      labelNode = forControl;
    } else {
      // Several controls (buttons, a list, rows): a group named by the label.
      labelNode = h('span', 'jp-JobForm-label', label);
      labelNode.id = uid('label');
      control.setAttribute('role', 'group');
      control.setAttribute('aria-labelledby', labelNode.id);
    }
    this.error = h('div', 'jp-JobForm-fieldError');
    this.error.id = uid('error');
    this.error.setAttribute('role', 'alert');
    body.append(control);
    const described = [this.error.id];
    if (hint) {
      const hintNode = h('div', 'jp-JobForm-hint', hint);
      hintNode.id = uid('hint');
      described.unshift(hintNode.id);
      body.append(hintNode);
    }
    body.append(this.error);
    control.setAttribute('aria-describedby', described.join(' '));
    this.row.append(labelNode, body);
  }

  setError(message: string): void {
    this.error.textContent = message;
    if (!isLabelable(this.control)) {
      return; // a group: its error, linked by aria-describedby, says which of its parts is wrong
    }
    if (message) {
      this.control.setAttribute('aria-invalid', 'true');
    } else {
      this.control.removeAttribute('aria-invalid');
    }
  }
}

function isLabelable(node: HTMLElement): boolean {
  return node instanceof HTMLInputElement || node instanceof HTMLSelectElement || node instanceof HTMLTextAreaElement;
}

/** A styled text input or textarea with a name (the tests and the server's field names use it). */
export function textInput(name: string, placeholder: string): HTMLInputElement;
export function textInput(name: string, placeholder: string, area: true): HTMLTextAreaElement;
export function textInput(name: string, placeholder: string, area = false): HTMLInputElement | HTMLTextAreaElement {
  const input = area ? h('textarea', 'jp-mod-styled') : h('input', 'jp-mod-styled');
  input.name = name;
  input.placeholder = placeholder;
  return input;
}
