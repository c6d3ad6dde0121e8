import { ISignal, Signal } from '@lumino/signaling';

import { IJobChanges, JobFeed } from './feed';
import { JobsAPI } from './handler';
import { IJob, IJobFilter } from './tokens';

/** How long the list waits for the rest of a burst of changes before it reloads (ms). */
const SETTLE = 30;

/**
 * The job list: filters and pages, loaded at start and when the filter changes, then reloaded only when the
 * server's change feed says a job changed. `changed` is emitted only when what the list shows differs.
 */
export class JobsModel {
  constructor(
    readonly api: JobsAPI,
    private feed: JobFeed
  ) {
    feed.changed.connect(this._onChanges, this);
    void feed.ready.then(() => this._reload());
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
    void this._reload();
  }

  /** How many jobs a page has (the `rowsPerPage` setting); a change reloads the list. */
  get pageSize(): number {
    return this._pageSize;
  }

  set pageSize(size: number) {
    if (Number.isSafeInteger(size) && size > 0 && size !== this._pageSize) {
      this._pageSize = size;
      void this._reload();
    }
  }

  /** Load one more page. */
  async more(): Promise<void> {
    this._pages += 1;
    await this._reload();
  }

  /** Reload every page shown. */
  async refresh(): Promise<void> {
    await this._reload();
  }

  /** Refresh now (after an action). */
  poke(): void {
    void this._reload();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    window.clearTimeout(this._timer);
    this.feed.changed.disconnect(this._onChanges, this);
    Signal.clearData(this);
  }

  private _onChanges(_: JobFeed, changes: IJobChanges): void {
    // A job shown, a new one, one that may now match the filter: reload the pages shown, once per burst.
    if (changes.reset || changes.ids.size) {
      window.clearTimeout(this._timer);
      this._timer = window.setTimeout(() => void this._reload(), SETTLE);
    }
  }

  /** Load the pages shown; only one load at a time (one asked for meanwhile runs after it). */
  private async _reload(): Promise<void> {
    if (this._loading) {
      this._again = true;
      return this._loading;
    }
    this._loading = this._load();
    try {
      await this._loading;
    } finally {
      this._loading = null;
    }
    if (this._again && !this._disposed) {
      this._again = false;
      await this._reload();
    }
  }

  private async _load(): Promise<void> {
    if (this._disposed) {
      return;
    }
    window.clearTimeout(this._retry);
    const filter = this._filter;
    try {
      let cursor: string | null = null;
      const jobs: IJob[] = [];
      for (let page = 0; page < this._pages; page++) {
        const result = await this.api.list(filter, cursor, this._pageSize);
        jobs.push(...result.jobs);
        cursor = result.next_cursor;
        if (!cursor) {
          break;
        }
      }
      if (filter !== this._filter) {
        this._again = true; // the filter changed meanwhile: this answer is for the old one
        return;
      }
      this._failures = 0;
      this._loadedAt = Date.now();
      this._set(jobs, cursor, null);
    } catch (error) {
      // Tried again with a growing pause: no change may come to retry it.
      this._failures += 1;
      this._retry = window.setTimeout(() => void this._reload(), Math.min(30000, 1000 * 2 ** this._failures));
      this._set(this._jobs, this._cursor, (error as Error).message);
    }
  }

  /** Take a new state; tell only when what a view shows differs (clocks that tick on are not news). */
  private _set(jobs: IJob[], cursor: string | null, error: string | null): void {
    const key = JSON.stringify([jobs.map(withoutClocks), cursor, error]);
    this._jobs = jobs;
    this._cursor = cursor;
    this._error = error;
    if (key !== this._key) {
      this._key = key;
      this._changed.emit();
    }
  }

  private _jobs: IJob[] = [];
  private _cursor: string | null = null;
  private _pages = 1;
  private _pageSize = 50;
  private _error: string | null = null;
  private _key = '';
  private _loadedAt = 0;
  private _filter: IJobFilter = { status: '', mine: false, text: '', labels: [], group: '' };
  private _changed = new Signal<this, void>(this);
  private _loading: Promise<void> | null = null;
  private _again = false;
  private _timer = 0;
  private _retry = 0;
  private _failures = 0;
  private _disposed = false;
}

/** A job less what the server computes from its clock at each answer (how long it has run or waited). */
function withoutClocks(job: IJob): Omit<IJob, 'durations'> {
  const { durations, ...rest } = job; // eslint-disable-line @typescript-eslint/no-unused-vars
  return rest;
}
