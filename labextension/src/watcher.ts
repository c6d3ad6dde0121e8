import { IDisposable, DisposableDelegate } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { IJobChanges, JobFeed } from './feed';
import { JobsAPI, JobsAPIError } from './handler';
import { IJob, TERMINAL } from './tokens';

/** What is known of a job: its record, or why there is none. */
export interface IJobState {
  job: IJob | null;
  /** The server does not know the job (deleted, or submitted to another server). */
  notFound: boolean;
  /** The last error, in the server's words (null when the last request worked). */
  error: string | null;
  /** When `job` was fetched (ms since the epoch): clocks tick on from there. */
  fetchedAt: number;
}

type Listener = (state: IJobState) => void;

interface IEntry {
  listeners: Set<Listener>;
  /** A request for the job is on its way; `again`: ask once more when it is back (it changed meanwhile). */
  fetching: boolean;
  again: boolean;
  /** Failed requests in a row, and the timer of the next try. */
  failures: number;
  retry: number;
  /** Nobody watches it any more. */
  stopped: boolean;
  /** How many of the listeners want to hear when the job ends. */
  notify: number;
  state: IJobState;
  /** Seen Pending, Preparing or Running in this session. */
  seenUnfinished: boolean;
}

/**
 * What is known of each job a view shows, however many views show it (a notebook may show the same job
 * twice, the job page too): fetched once, then again only when the server's change feed names the job (or
 * resets), so a view of a job that does not change makes no request. `ended` tells, once per job per
 * session, that a job seen unfinished by a view that asked to be told has ended.
 */
export class JobWatcher implements IDisposable {
  constructor(
    private api: JobsAPI,
    private feed: JobFeed
  ) {
    feed.changed.connect(this._onChanges, this);
  }

  /** Emitted once per job per session when a watched job ends. */
  get ended(): ISignal<this, IJob> {
    return this._ended;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** The last state of job `id`, if it is watched. */
  state(id: number): IJobState | null {
    return this._entries.get(id)?.state ?? null;
  }

  /**
   * Call `listener` with job `id`'s state now (if known) and at every change, until the result is
   * disposed. With `notify`, the end of the job is announced on `ended`.
   */
  watch(id: number, listener: Listener, options: { notify?: boolean } = {}): IDisposable {
    let entry = this._entries.get(id);
    if (!entry) {
      entry = this._start(id);
    } else if (entry.state.fetchedAt) {
      listener(entry.state);
    }
    const notify = !!options.notify;
    entry.listeners.add(listener);
    entry.notify += notify ? 1 : 0;
    const watched = entry;
    return new DisposableDelegate(() => {
      watched.listeners.delete(listener);
      watched.notify -= notify ? 1 : 0;
      if (!watched.listeners.size) {
        this._stop(watched);
        if (this._entries.get(id) === watched) {
          this._entries.delete(id);
        }
      }
    });
  }

  /** Ask the server now (after an action such as cancel). */
  refresh(id: number): void {
    const entry = this._entries.get(id);
    if (entry) {
      void this._fetch(id, entry);
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.feed.changed.disconnect(this._onChanges, this);
    for (const entry of this._entries.values()) {
      this._stop(entry);
    }
    this._entries.clear();
  }

  private _start(id: number): IEntry {
    const entry: IEntry = {
      listeners: new Set(),
      fetching: false,
      again: false,
      failures: 0,
      retry: 0,
      stopped: false,
      notify: 0,
      seenUnfinished: false,
      state: { job: null, notFound: false, error: null, fetchedAt: 0 }
    };
    this._entries.set(id, entry);
    void this.feed.ready.then(() => this._fetch(id, entry));
    return entry;
  }

  private _stop(entry: IEntry): void {
    entry.stopped = true;
    window.clearTimeout(entry.retry);
  }

  /** The feed named jobs: ask for those watched (all of them on a reset). */
  private _onChanges(_: JobFeed, changes: IJobChanges): void {
    for (const [id, entry] of this._entries) {
      if (changes.reset || changes.ids.has(id)) {
        void this._fetch(id, entry);
      }
    }
  }

  private async _fetch(id: number, entry: IEntry): Promise<void> {
    if (entry.stopped) {
      return;
    }
    if (entry.fetching) {
      entry.again = true;
      return;
    }
    entry.fetching = true;
    window.clearTimeout(entry.retry);
    let state: IJobState | null = null;
    try {
      const job = await this.api.get(id);
      state = { job, notFound: false, error: null, fetchedAt: Date.now() };
    } catch (error) {
      if (error instanceof JobsAPIError && error.status === 404) {
        state = { job: null, notFound: true, error: null, fetchedAt: Date.now() };
      } else if (!entry.stopped) {
        // Asked again with a growing pause: the change that would make it ask may have come already.
        entry.failures += 1;
        entry.retry = window.setTimeout(() => void this._fetch(id, entry), Math.min(15000, 500 * 2 ** entry.failures));
        entry.state = { ...entry.state, error: (error as Error).message };
        this._tell(entry);
      }
    } finally {
      entry.fetching = false;
    }
    if (entry.again) {
      entry.again = false;
      void this._fetch(id, entry);
      return;
    }
    if (!state || entry.stopped) {
      return;
    }
    entry.failures = 0;
    entry.state = state;
    const job = state.job;
    const ended = !job || TERMINAL.includes(job.status);
    if (job && !ended) {
      entry.seenUnfinished = true;
    }
    if (job && ended && entry.seenUnfinished && entry.notify > 0 && !this._notified.has(id)) {
      this._notified.add(id);
      this._ended.emit(job);
    }
    this._tell(entry);
  }

  private _tell(entry: IEntry): void {
    for (const listener of [...entry.listeners]) {
      listener(entry.state);
    }
  }

  private _entries = new Map<number, IEntry>();
  private _notified = new Set<number>();
  private _ended = new Signal<this, IJob>(this);
  private _disposed = false;
}
