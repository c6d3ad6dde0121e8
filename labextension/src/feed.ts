import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { JobsAPI, JobsAPIError } from './handler';

/** What the server's change feed said: the jobs that changed, or that everything may have (`reset`). */
export interface IJobChanges {
  /** Jobs that changed (created, written, moved to another status), and those that are gone. */
  ids: ReadonlySet<number>;
  /** Of `ids`, the jobs that no longer exist. */
  deleted: ReadonlySet<number>;
  /** The feed could not tell what changed (the server restarted, or this Lab fell far behind): reload it all. */
  reset: boolean;
}

/** Seconds the server holds one request open when nothing changes. */
const HOLD = 30;

/**
 * The server's change feed (GET /changes, a long-poll with a cursor): one per Lab, so an idle Lab keeps just
 * one request open, and every view (the Jobs panel, job pages, jobs in notebooks) reloads only what changed.
 * `ready` resolves once the feed knows where it starts (or could not ask): load after it, and no change
 * made meanwhile is missed. On errors it backs off (up to 30 s) and goes on from the same cursor.
 */
export class JobFeed implements IDisposable {
  constructor(private api: JobsAPI) {
    this.ready = new Promise(resolve => (this._ready = resolve));
    void this._run();
  }

  /** Resolves when the feed has its first cursor, or its first request failed (views load either way). */
  readonly ready: Promise<void>;

  /** Emitted with what changed, as soon as the server says. */
  get changed(): ISignal<this, IJobChanges> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._abort.signal.aborted;
  }

  dispose(): void {
    this._abort.abort();
    this._ready();
  }

  private async _run(): Promise<void> {
    let cursor: string | null = null;
    let failures = 0;
    let missed = false; // views loaded while the feed had no cursor: what changed then is not known
    const signal = this._abort.signal;
    while (!signal.aborted) {
      try {
        const answer = await this.api.changes(cursor, HOLD, signal);
        failures = 0;
        const first = cursor === null;
        cursor = answer.cursor;
        if (first) {
          this._ready();
        }
        if ((first && missed) || answer.reset) {
          missed = false;
          this._changed.emit({ ids: new Set(), deleted: new Set(), reset: true });
        } else if (answer.changes.length) {
          this._changed.emit({
            ids: new Set(answer.changes.map(change => change.id)),
            deleted: new Set(answer.changes.filter(change => change.deleted).map(change => change.id)),
            reset: false
          });
        }
      } catch (error) {
        if (signal.aborted) {
          return;
        }
        this._ready(); // views load without the feed, rather than not at all
        if (error instanceof JobsAPIError && error.status === 400) {
          cursor = null; // a cursor this server cannot read: start afresh, then reload everything
        }
        missed = missed || cursor === null;
        failures += 1;
        await sleep(Math.min(30000, 500 * 2 ** failures), signal);
      }
    }
  }

  private _abort = new AbortController();
  private _ready: () => void = () => undefined;
  private _changed = new Signal<this, IJobChanges>(this);
}

/** Wait `ms` milliseconds, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
