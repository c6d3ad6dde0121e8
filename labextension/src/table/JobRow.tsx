import { TranslationBundle } from '@jupyterlab/translation';
import { deleteIcon, folderIcon, redoIcon, stopIcon, LabIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IJob } from '../tokens';
import { elapsed, formatDuration, formatTime } from '../util';
import { ColumnId } from './columns';
import { hasEnded } from './rowActions';

/** What a row does; one object for the whole table (stable, so unchanged rows do not render again). */
export interface IRowHandlers {
  focus: (id: number) => void;
  toggle: (id: number) => void;
  open: (job: IJob) => void;
  cancel: (job: IJob) => void;
  remove: (job: IJob) => void;
  rerun: (job: IJob) => void;
  outputs: (job: IJob) => void;
  /** The row's element, for moving focus to it (null when it goes). */
  ref: (id: number, node: HTMLTableRowElement | null) => void;
}

export interface IJobRowProps {
  job: IJob;
  /** When the job was loaded (ms since the epoch), for a job not ended: its clock ticks on from there; else 0. */
  loadedAt: number;
  /** The columns shown, in order (wide), or null for the compact two-line row (narrow). */
  columns: ColumnId[] | null;
  /** The row holding the table's one tab stop: it and its controls are in the tab order. */
  tabbable: boolean;
  selected: boolean;
  handlers: IRowHandlers;
  trans: TranslationBundle;
}

/** A status badge coloured by theme variables; the message (why it failed, why it waits) on hover. */
export function Badge({ job }: { job: IJob }): JSX.Element {
  return (
    <span className={`jp-JobsBadge jp-JobsBadge-${job.status}`} title={job.message || job.status}>
      {job.status}
    </span>
  );
}

/** How long the job has run (or waited), ticking every second while it has not ended. */
function Elapsed({ job, loadedAt }: { job: IJob; loadedAt: number }): JSX.Element {
  const [, tick] = React.useState(0);
  React.useEffect(() => {
    if (!loadedAt) {
      return;
    }
    const timer = window.setInterval(() => tick(n => n + 1), 1000);
    return () => window.clearInterval(timer);
  }, [loadedAt]);
  return <>{formatDuration(elapsed(job, loadedAt))}</>;
}

function ActionButton(props: {
  icon: LabIcon;
  label: string;
  className: string;
  tabbable: boolean;
  onClick: () => void;
}): JSX.Element {
  return (
    <button
      type="button"
      className={`jp-Button jp-mod-minimal jp-JobsTable-action ${props.className}`}
      aria-label={props.label}
      title={props.label}
      tabIndex={props.tabbable ? 0 : -1}
      onClick={event => {
        event.stopPropagation(); // not the row's click (which opens the job)
        props.onClick();
      }}
    >
      <props.icon.react tag="span" elementPosition="center" />
    </button>
  );
}

/** Cancel (a job not ended) or Delete (an ended one), Rerun, and Open outputs (a job that has some). */
function Actions({ job, tabbable, handlers, trans }: Omit<IJobRowProps, 'columns' | 'selected'>): JSX.Element {
  const what = `#${job.id} '${job.name}'`;
  return (
    <span className="jp-JobsTable-rowActions">
      {/* One button that turns from Cancel into Delete when the job ends: the same element, so focus stays on it. */}
      {hasEnded(job) ? (
        <ActionButton key="end" icon={deleteIcon} className="jp-JobsTable-delete" label={trans.__('Delete job %1', what)}
          tabbable={tabbable} onClick={() => handlers.remove(job)} />
      ) : (
        <ActionButton key="end" icon={stopIcon} className="jp-JobsTable-cancel" label={trans.__('Cancel job %1', what)}
          tabbable={tabbable} onClick={() => handlers.cancel(job)} />
      )}
      <ActionButton icon={redoIcon} className="jp-JobsTable-rerun" label={trans.__('Rerun job %1', what)}
        tabbable={tabbable} onClick={() => handlers.rerun(job)} />
      {job.outputs_count ? (
        <ActionButton icon={folderIcon} className="jp-JobsTable-outputs"
          label={trans._n('Open the output of job %2', 'Open the %1 outputs of job %2', job.outputs_count, what)}
          tabbable={tabbable} onClick={() => handlers.outputs(job)} />
      ) : null}
    </span>
  );
}

function Labels({ job }: { job: IJob }): JSX.Element | null {
  const labels = Object.entries(job.labels ?? {});
  if (!labels.length) {
    return null;
  }
  return (
    <div className="jp-JobsLabels jp-JobsPanel-labels">
      {labels.map(([key, value]) => (
        <span key={key} className="jp-JobsLabel">{`${key}=${value}`}</span>
      ))}
    </div>
  );
}

/** Why a pending job waits, in the server's words. */
function Reason({ job }: { job: IJob }): JSX.Element | null {
  return job.status === 'Pending' && job.message ? <div className="jp-JobsPanel-reason">{job.message}</div> : null;
}

function Name({ job }: { job: IJob }): JSX.Element {
  return (
    <span className="jp-JobsPanel-name" title={job.name}>
      {job.name}
    </span>
  );
}

function cell(id: ColumnId, props: IJobRowProps): JSX.Element {
  const { job, trans } = props;
  switch (id) {
    case 'status':
      return <td key={id} className="jp-JobsTable-status"><Badge job={job} /></td>;
    case 'name':
      return (
        <td key={id} className="jp-JobsTable-name">
          <div className="jp-JobsPanel-itemTop">
            <Name job={job} />
            <span className="jp-JobsPanel-id">#{job.id}</span>
          </div>
          <Reason job={job} />
          <Labels job={job} />
        </td>
      );
    case 'schedule':
      return (
        <td key={id} className="jp-JobsTable-schedule" title={job.schedule_id ? trans.__('Fired by schedule %1', job.schedule_id) : undefined}>
          {job.schedule_id ? `#${job.schedule_id}` : ''}
        </td>
      );
    case 'owner':
      return <td key={id} className="jp-JobsTable-owner">{job.owner}</td>;
    case 'group':
      return <td key={id} className="jp-JobsTable-group">{job.group ?? ''}</td>;
    case 'timing':
      return (
        <td key={id} className="jp-JobsTable-timing">
          <div className="jp-JobsTable-started" title={formatTime(job.started_at)}>{formatTime(job.started_at)}</div>
          <div className="jp-JobsPanel-meta"><Elapsed job={job} loadedAt={props.loadedAt} /></div>
        </td>
      );
    case 'actions':
      return <td key={id} className="jp-JobsTable-actionsCell"><Actions {...props} /></td>;
  }
}

/** The compact row of a narrow panel: badge, name and id over one line of what and when, and the actions. */
function compact(props: IJobRowProps): JSX.Element {
  const { job, trans } = props;
  const who = job.group ? `${job.owner} (${job.group})` : job.owner;
  return (
    <td className="jp-JobsTable-compact">
      <div className="jp-JobsPanel-itemTop">
        <Badge job={job} />
        <Name job={job} />
        <span className="jp-JobsPanel-id">#{job.id}</span>
      </div>
      <div className="jp-JobsTable-compactMeta">
        <span className="jp-JobsPanel-meta">
          {`${job.instance_type} · ${who} · ${formatTime(job.started_at)} · `}
          <Elapsed job={job} loadedAt={props.loadedAt} />
          {job.schedule_id ? ` · ${trans.__('Schedule #%1', job.schedule_id)}` : ''}
        </span>
        <Actions {...props} />
      </div>
      <Reason job={job} />
      <Labels job={job} />
    </td>
  );
}

function JobRowView(props: IJobRowProps): JSX.Element {
  const { job, tabbable, selected, handlers, trans } = props;
  const ref = React.useCallback((node: HTMLTableRowElement | null) => handlers.ref(job.id, node), [job.id, handlers]);
  return (
    <tr
      ref={ref}
      className="jp-JobsPanel-item jp-JobsTable-row"
      data-job-id={job.id}
      data-status={job.status}
      tabIndex={tabbable ? 0 : -1}
      aria-selected={selected}
      onFocus={() => handlers.focus(job.id)}
      onClick={() => {
        // Not when the click ended selecting text (to copy a name or an id).
        if (!window.getSelection()?.toString()) {
          handlers.open(job);
        }
      }}
    >
      {/* A click beside the checkbox does not open the job either. */}
      <td className="jp-JobsTable-select" onClick={event => event.stopPropagation()}>
        <input
          type="checkbox"
          checked={selected}
          tabIndex={tabbable ? 0 : -1}
          aria-label={trans.__("Select job #%1 '%2'", job.id, job.name)}
          onClick={event => event.stopPropagation()}
          onChange={() => handlers.toggle(job.id)}
        />
      </td>
      {props.columns ? props.columns.map(id => cell(id, props)) : compact(props)}
    </tr>
  );
}

/** Rows render again only when what they show changed (a refresh brings new objects for the same jobs). */
function same(a: IJobRowProps, b: IJobRowProps): boolean {
  return (
    a.tabbable === b.tabbable &&
    a.loadedAt === b.loadedAt &&
    a.selected === b.selected &&
    a.handlers === b.handlers &&
    a.trans === b.trans &&
    (a.columns ?? []).join() === (b.columns ?? []).join() &&
    (a.columns === null) === (b.columns === null) &&
    (a.job === b.job || JSON.stringify(a.job) === JSON.stringify(b.job))
  );
}

export const JobRow = React.memo(JobRowView, same);
