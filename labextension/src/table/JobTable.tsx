import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IJob } from '../tokens';
import { ColumnId, DEFAULT_SORT, IColumn, ISort, columns as allColumns, sortJobs, visibleColumns } from './columns';
import { IRowHandlers, JobRow } from './JobRow';
import { hasEnded } from './rowActions';

export interface IJobTableProps {
  jobs: IJob[];
  /** When the jobs were loaded (ms since the epoch): the clocks of those not ended tick on from there. */
  loadedAt: number;
  trans: TranslationBundle;
  /** Wide: PrimeHub's columns; narrow: compact two-line rows. */
  wide: boolean;
  singleUser: boolean;
  selected: ReadonlySet<number>;
  setSelected: (ids: Set<number>) => void;
  open: (job: IJob) => void;
  cancel: (job: IJob) => void;
  remove: (job: IJob) => void;
  rerun: (job: IJob) => void;
  outputs: (job: IJob) => void;
}

/** Columns that sort A→Z first on a first click; the other (Timing) newest first. */
const ASCENDING_FIRST: ReadonlyArray<ColumnId> = ['status', 'name', 'owner', 'group', 'schedule'];

/**
 * The job table: one tab stop (the focused row; arrows, Home and End move it), Enter opens a job, Delete
 * asks to delete it, Space selects it. Rows are keyed by job id, so a refresh changes only the cells
 * whose values changed, and the focused row, its focus and any selected text stay.
 */
export function JobTable(props: IJobTableProps): JSX.Element {
  const { trans, wide, selected } = props;
  const all = React.useMemo(() => allColumns(trans), [trans]);
  const [sort, setSort] = React.useState<ISort>(DEFAULT_SORT);
  const [focused, setFocused] = React.useState<number | null>(null);
  const rows = React.useMemo(() => sortJobs(props.jobs, sort, all), [props.jobs, sort, all]);
  const shown: IColumn[] = React.useMemo(
    () => visibleColumns(all, props.jobs, { singleUser: props.singleUser }),
    [all, props.jobs, props.singleUser]
  );
  const shownIds = shown.map(column => column.id).join();
  const rowColumns = React.useMemo(() => (wide ? (shownIds.split(',') as ColumnId[]) : null), [wide, shownIds]);

  // The latest props and rows for the handlers, which stay one object (so unchanged rows do not render).
  const latest = React.useRef({ props, rows });
  latest.current = { props, rows };
  const nodes = React.useRef(new Map<number, HTMLTableRowElement>());
  const focusIndex = React.useRef(0);
  const handlers: IRowHandlers = React.useMemo(
    () => ({
      focus: id => {
        setFocused(id);
        focusIndex.current = latest.current.rows.findIndex(job => job.id === id);
      },
      toggle: id => {
        const next = new Set(latest.current.props.selected);
        next.has(id) ? next.delete(id) : next.add(id);
        latest.current.props.setSelected(next);
      },
      open: job => latest.current.props.open(job),
      cancel: job => latest.current.props.cancel(job),
      remove: job => latest.current.props.remove(job),
      rerun: job => latest.current.props.rerun(job),
      outputs: job => latest.current.props.outputs(job),
      ref: (id, node) => (node ? nodes.current.set(id, node) : nodes.current.delete(id))
    }),
    []
  );

  // The tab stop: the focused row while it is listed, else the first.
  const tabStop = rows.some(job => job.id === focused) ? focused : (rows[0]?.id ?? null);

  // When the focused row leaves the list (deleted, filtered out), focus goes to the row now in its place.
  const table = React.useRef<HTMLTableElement>(null);
  React.useLayoutEffect(() => {
    if (focused === null || nodes.current.has(focused) || !rows.length) {
      return;
    }
    const active = document.activeElement;
    const index = Math.min(Math.max(focusIndex.current, 0), rows.length - 1);
    setFocused(rows[index].id);
    if (!active || active === document.body) {
      nodes.current.get(rows[index].id)?.focus();
    }
  }, [rows, focused]);

  const move = (to: number) => {
    const job = rows[Math.min(Math.max(to, 0), rows.length - 1)];
    if (job) {
      nodes.current.get(job.id)?.focus(); // its onFocus makes it the tab stop
    }
  };
  const onKeyDown = (event: React.KeyboardEvent<HTMLTableElement>) => {
    const row = (event.target as HTMLElement).closest('tr.jp-JobsTable-row') as HTMLTableRowElement | null;
    if (!row) {
      return;
    }
    const index = rows.findIndex(job => String(job.id) === row.dataset.jobId);
    const job = rows[index];
    const onRow = event.target === row;
    switch (event.key) {
      case 'ArrowDown':
        move(index + 1);
        break;
      case 'ArrowUp':
        move(index - 1);
        break;
      case 'Home':
        move(0);
        break;
      case 'End':
        move(rows.length - 1);
        break;
      case 'Enter':
        if (!onRow) {
          return; // a button's own Enter
        }
        props.open(job);
        break;
      case 'Delete':
        props.remove(job);
        break;
      case ' ':
        if (!onRow) {
          return; // the checkbox's own Space
        }
        handlers.toggle(job.id);
        break;
      default:
        return;
    }
    event.preventDefault();
  };

  // The narrow table has one header (by time); there it first goes back from another column's order.
  const sortBy = (column: ColumnId) =>
    setSort(
      sort.column === column
        ? { column, ascending: !sort.ascending }
        : column === DEFAULT_SORT.column
          ? DEFAULT_SORT
          : { column, ascending: ASCENDING_FIRST.includes(column) }
    );
  const ariaSort = (column: ColumnId) =>
    sort.column === column ? (sort.ascending ? 'ascending' : 'descending') : 'none';
  const header = (column: ColumnId, label: string, className: string) => (
    <th key={column} className={className} aria-sort={ariaSort(column)} scope="col">
      <button type="button" className="jp-JobsTable-sort" onClick={() => sortBy(column)}
        title={trans.__('Sort by %1', all.find(c => c.id === column)?.label.toLowerCase() ?? label)}>
        {label}
        <span className="jp-JobsTable-sortMark" aria-hidden="true">
          {sort.column === column ? (sort.ascending ? '▲' : '▼') : ''}
        </span>
      </button>
    </th>
  );

  const allSelected = rows.length > 0 && rows.every(job => selected.has(job.id));
  const someSelected = rows.some(job => selected.has(job.id));
  const selectAll = React.useCallback(
    (node: HTMLInputElement | null) => {
      if (node) {
        node.indeterminate = someSelected && !allSelected;
      }
    },
    [someSelected, allSelected]
  );

  return (
    <table
      ref={table}
      className={`jp-JobsTable ${wide ? 'jp-mod-wide' : 'jp-mod-narrow'}`}
      aria-label={trans.__('Jobs')}
      aria-multiselectable="true"
      role="grid"
      onKeyDown={onKeyDown}
    >
      <thead>
        <tr>
          <th className="jp-JobsTable-select" scope="col">
            <input
              ref={selectAll}
              type="checkbox"
              className="jp-JobsTable-selectAll"
              aria-label={trans.__('Select all listed jobs')}
              title={trans.__('Select all listed jobs')}
              checked={allSelected}
              disabled={!rows.length}
              onChange={() => props.setSelected(allSelected ? new Set() : new Set(rows.map(job => job.id)))}
            />
          </th>
          {wide
            ? shown.map(column =>
                column.sortKey
                  ? header(column.id, column.label, `jp-JobsTable-${column.id}`)
                  : (
                    <th key={column.id} className={`jp-JobsTable-${column.id}`} scope="col">
                      {column.label}
                    </th>
                  )
              )
            : header(
                'timing',
                sort.column === 'timing'
                  ? trans.__('Jobs')
                  : trans.__('Jobs, by %1', all.find(c => c.id === sort.column)?.label.toLowerCase() ?? ''),
                'jp-JobsTable-compact'
              )}
        </tr>
      </thead>
      <tbody>
        {rows.map(job => (
          <JobRow
            key={job.id}
            job={job}
            loadedAt={hasEnded(job) ? 0 : props.loadedAt}
            columns={rowColumns}
            tabbable={job.id === tabStop}
            selected={selected.has(job.id)}
            handlers={handlers}
            trans={trans}
          />
        ))}
      </tbody>
    </table>
  );
}
