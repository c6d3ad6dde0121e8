import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { JobsAPI } from './handler';
import { IJob, IJobFilter } from './tokens';

/**
 * The job list: filters, pages, and live updates through a Poll that backs off on errors and
 * stands by while the browser tab is hidden.
 */
export class JobsModel {
  constructor(readonly api: JobsAPI, interval = 2000) {
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval, backoff: true, max: 30 * 1000 },
      standby: 'when-hidden',
      name: 'jupyter-jobs:list'
    });
  }

  /** Emitted when the list (or the error) changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get jobs(): IJob[] {
    return this._jobs;
  }

  /** When `jobs` were loaded (ms since the epoch): their clocks (how long each has run) tick on from there. */
  get loadedAt(): number {
    return this._loadedAt;
  }

  get hasMore(): boolean {
    return this._cursor !== null;
  }

  /** The last error, in the server's words (null when the last refresh worked). */
  get error(): string | null {
    return this._error;
  }

  get filter(): IJobFilter {
    return this._filter;
  }

  set filter(filter: IJobFilter) {
    this._filter = filter;
    this._pages = 1;
    void this._poll.refresh();
  }

  /** How many jobs a page has (the `rowsPerPage` setting); a change reloads the list. */
  get pageSize(): number {
    return this._pageSize;
  }

  set pageSize(size: number) {
    if (Number.isSafeInteger(size) && size > 0 && size !== this._pageSize) {
      this._pageSize = size;
      void this._poll.refresh();
    }
  }

  /** Load one more page. */
  async more(): Promise<void> {
    this._pages += 1;
    await this.refresh();
  }

  /** Reload every page shown. */
  async refresh(): Promise<void> {
    try {
      let cursor: string | null = null;
      const jobs: IJob[] = [];
      for (let page = 0; page < this._pages; page++) {
        const result = await this.api.list(this._filter, cursor, this._pageSize);
        jobs.push(...result.jobs);
        cursor = result.next_cursor;
        if (!cursor) {
          break;
        }
      }
      this._jobs = jobs;
      this._loadedAt = Date.now();
      this._cursor = cursor;
      this._error = null;
    } catch (error) {
      this._error = (error as Error).message;
      this._changed.emit();
      throw error; // the Poll backs off
    }
    this._changed.emit();
  }

  /** Refresh now (after an action). */
  poke(): void {
    void this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
  }

  private _poll: Poll;
  private _jobs: IJob[] = [];
  private _cursor: string | null = null;
  private _pages = 1;
  private _pageSize = 50;
  private _loadedAt = 0;
  private _error: string | null = null;
  private _filter: IJobFilter = { status: '', mine: false, text: '', labels: [], group: '' };
  private _changed = new Signal<this, void>(this);
}
