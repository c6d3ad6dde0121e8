import { IDisposable, DisposableDelegate } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

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
  poll: Poll;
  listeners: Set<Listener>;
  /** How many of the listeners want to hear when the job ends. */
  notify: number;
  state: IJobState;
  /** Seen Pending, Preparing or Running in this session. */
  seenUnfinished: boolean;
}

/**
 * One poll per job, however many views show it (a notebook may show the same job twice, the job
 * page too). A poll stops when its job ends or is not found, and when nothing watches it any more.
 * `ended` tells, once per job per session, that a job seen unfinished by a view that asked to be
 * told has ended.
 */
export class JobWatcher implements IDisposable {
  constructor(
    private api: JobsAPI,
    private interval = 1000
  ) {}

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
        watched.poll.dispose();
        if (this._entries.get(id) === watched) {
          this._entries.delete(id);
        }
      }
    });
  }

  /** Ask the server now (after an action such as cancel). */
  refresh(id: number): void {
    void this._entries.get(id)?.poll.refresh();
  }

  dispose(): void {
    this._disposed = true;
    for (const entry of this._entries.values()) {
      entry.poll.dispose();
    }
    this._entries.clear();
  }

  private _start(id: number): IEntry {
    const entry: IEntry = {
      listeners: new Set(),
      notify: 0,
      seenUnfinished: false,
      state: { job: null, notFound: false, error: null, fetchedAt: 0 },
      poll: new Poll({
        factory: () => this._fetch(id, entry),
        frequency: { interval: this.interval, backoff: true, max: 15000 },
        standby: 'when-hidden',
        name: `jupyter-jobs:watch-${id}`
      })
    };
    this._entries.set(id, entry);
    return entry;
  }

  private async _fetch(id: number, entry: IEntry): Promise<void> {
    let state: IJobState;
    try {
      const job = await this.api.get(id);
      state = { job, notFound: false, error: null, fetchedAt: Date.now() };
    } catch (error) {
      if (error instanceof JobsAPIError && error.status === 404) {
        state = { job: null, notFound: true, error: null, fetchedAt: Date.now() };
      } else {
        entry.state = { ...entry.state, error: (error as Error).message };
        this._tell(entry);
        throw error; // the Poll backs off
      }
    }
    if (entry.poll.isDisposed) {
      return;
    }
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
    if (ended) {
      void entry.poll.stop();
    }
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
