// Complete escape sequences: CSI (colours, cursor moves), OSC (titles, links), and two-byte ones.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;
// An escape sequence cut at the end of a chunk: kept until the rest arrives.
const PARTIAL_ESCAPE = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*)?$/;

/**
 * Text as a terminal shows it: `\n` ends the line, `\r` goes back to the start of the line and what
 * follows overwrites it (a tqdm bar stays ONE line), `\b` steps back one character. ANSI escape
 * sequences are dropped (a log is plain text here), also when a chunk cuts one in two.
 */
export class TerminalText {
  /**
   * Take a chunk; returns the lines it completed (with their newlines) and the line being written.
   */
  feed(chunk: string): { done: string; current: string } {
    let text = this._pending + chunk;
    const partial = PARTIAL_ESCAPE.exec(text);
    this._pending = partial ? partial[0] : '';
    if (partial) {
      text = text.slice(0, partial.index);
    }
    text = text.replace(ESCAPES, '');
    let done = '';
    for (const part of text.split(/([\r\n\b])/)) {
      if (part === '\n') {
        done += this._line + '\n';
        this._line = '';
        this._cursor = 0;
      } else if (part === '\r') {
        this._cursor = 0;
      } else if (part === '\b') {
        this._cursor = Math.max(0, this._cursor - 1);
      } else if (part) {
        this._line = this._line.slice(0, this._cursor) + part + this._line.slice(this._cursor + part.length);
        this._cursor += part.length;
      }
    }
    return { done, current: this._line };
  }

  private _pending = '';
  private _line = '';
  private _cursor = 0;
}
