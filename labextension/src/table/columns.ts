import { TranslationBundle } from '@jupyterlab/translation';

import { IJob } from '../tokens';

/** The columns of the wide job table, PrimeHub's: Status, Name, Schedule, User, Group, Timing, Actions. */
export type ColumnId = 'status' | 'name' | 'schedule' | 'owner' | 'group' | 'timing' | 'actions';

export interface IColumn {
  id: ColumnId;
  label: string;
  /** The value the column sorts by; none for a column that does not sort. */
  sortKey?: (job: IJob) => string | number;
}

/** Order of statuses when sorting by status: what needs attention first. */
const STATUS_ORDER = ['Running', 'Preparing', 'Pending', 'Failed', 'Unknown', 'Cancelled', 'Succeeded'];

export function columns(trans: TranslationBundle): IColumn[] {
  return [
    { id: 'status', label: trans.__('Status'), sortKey: job => STATUS_ORDER.indexOf(job.status) },
    { id: 'name', label: trans.__('Name'), sortKey: job => job.name.toLowerCase() },
    { id: 'schedule', label: trans.__('Schedule'), sortKey: job => job.schedule_id ?? 0 },
    { id: 'owner', label: trans.__('User'), sortKey: job => job.owner.toLowerCase() },
    { id: 'group', label: trans.__('Group'), sortKey: job => (job.group ?? '').toLowerCase() },
    // By when it was submitted; newest first is the default.
    { id: 'timing', label: trans.__('Timing'), sortKey: job => job.created_at },
    { id: 'actions', label: trans.__('Actions') }
  ];
}

/** What decides which columns show: the server's mode (GET /config) and the rows listed. */
export interface IColumnContext {
  /** A single-user server (no admin role, no groups): every job is the caller's, so no User or Group column. */
  singleUser: boolean;
}

/**
 * The columns worth showing for these rows: no User in single-user mode, and no column that is empty for
 * every row (Schedule when no job came from a schedule, Group when none has one).
 */
export function visibleColumns(all: IColumn[], jobs: IJob[], context: IColumnContext): IColumn[] {
  const empty: { [id: string]: boolean } = {
    schedule: !jobs.some(job => job.schedule_id),
    owner: context.singleUser || !jobs.some(job => job.owner),
    // A single-user server keeps a spec's group as written: shown when some job has one.
    group: !jobs.some(job => job.group)
  };
  return all.filter(column => !empty[column.id]);
}

/** How the rows are sorted: a column, and which way. */
export interface ISort {
  column: ColumnId;
  ascending: boolean;
}

/** Newest first. */
export const DEFAULT_SORT: ISort = { column: 'timing', ascending: false };

/** The jobs sorted as `sort` says (ties: newest first), as a new array. */
export function sortJobs(jobs: IJob[], sort: ISort, all: IColumn[]): IJob[] {
  const key = all.find(c => c.id === sort.column)?.sortKey;
  if (!key) {
    return jobs.slice();
  }
  const sign = sort.ascending ? 1 : -1;
  return jobs.slice().sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka < kb) {
      return -sign;
    }
    if (ka > kb) {
      return sign;
    }
    return b.id - a.id;
  });
}
