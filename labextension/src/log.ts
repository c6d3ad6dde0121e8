import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { TerminalText } from './terminal';
import { h } from './util';

/**
 * A job's log: follows the end while the reader is at the end, and stays exactly where the reader
 * scrolled it otherwise (new text never moves the view). Finished lines are appended, only the line
 * being written is replaced, so a long log costs nothing per update.
 */
export class JobLog extends Widget {
  constructor(className = '') {
    super({ node: h('pre', `jp-JobLog ${className}`.trim()) });
    this.node.tabIndex = 0; // scrollable with the keyboard
    this.node.dataset.empty = 'true';
    this.node.append(this._current);
    this.node.addEventListener('scroll', () => {
      if (this.node.clientHeight > 0) {
        this._follow = this._atEnd();
        this._top = this.node.scrollTop;
      }
    });
  }

  /** Whether anything was written. */
  get isEmpty(): boolean {
    return this._empty;
  }

  /** All the text shown. */
  get text(): string {
    return this.node.textContent ?? '';
  }

  /** Forget the text (a terminal's `reset`). */
  clear(): void {
    this._terminal = new TerminalText();
    this._current.textContent = '';
    this.node.replaceChildren(this._current);
    this._empty = true;
    this.node.dataset.empty = 'true';
    this._follow = true;
    this._top = 0;
  }

  append(chunk: string): void {
    if (!chunk) {
      return;
    }
    const { done, current } = this._terminal.feed(chunk);
    if (done) {
      this.node.insertBefore(document.createTextNode(done), this._current);
    }
    if (this._current.textContent !== current) {
      this._current.textContent = current;
    }
    if (done || current) {
      this._empty = false;
      this.node.dataset.empty = 'false';
    }
    // Only a reader at the end is moved; anyone else stays put (text is only added below them).
    if (this._follow) {
      this.node.scrollTop = this.node.scrollHeight;
    }
  }

  protected onAfterShow(msg: Message): void {
    this._restore();
  }

  protected onAfterAttach(msg: Message): void {
    this._restore();
  }

  /** Back in view: at the end if following, else where the reader left it (hiding may have lost it). */
  private _restore(): void {
    if (this._follow) {
      this.node.scrollTop = this.node.scrollHeight;
    } else if (this.node.scrollTop !== this._top) {
      this.node.scrollTop = this._top;
    }
  }

  private _atEnd(): boolean {
    return this.node.scrollTop + this.node.clientHeight >= this.node.scrollHeight - 4;
  }

  private _terminal = new TerminalText();
  private _current = h('span', 'jp-JobLog-current');
  private _follow = true;
  private _top = 0;
  private _empty = true;
}
