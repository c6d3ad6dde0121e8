import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IJobFilter } from '../tokens';

const STATUSES = ['Pending', 'Preparing', 'Running', 'Succeeded', 'Failed', 'Cancelled', 'Unknown'];

export interface IFiltersProps {
  trans: TranslationBundle;
  /** Groups to offer (the caller's, and those seen in the list); the group filter shows once there is one. */
  groups: string[];
  /** Offer the group filter even with no group known (an admin sees every group's jobs). */
  admin: boolean;
  onChange: (filter: IJobFilter) => void;
}

/** How long typing settles before the list is asked again. */
const SETTLE_MS = 300;

/** The list's filters, each named for screen readers: status, group, mine, text, labels, schedule. */
export function Filters({ trans, groups, admin, onChange }: IFiltersProps): JSX.Element {
  const [status, setStatus] = React.useState('');
  const [group, setGroup] = React.useState('');
  const [mine, setMine] = React.useState(false);
  const [text, setText] = React.useState('');
  const [labels, setLabels] = React.useState('');
  const [schedule, setSchedule] = React.useState('');
  const mounted = React.useRef(false);
  const onChangeRef = React.useRef(onChange);
  onChangeRef.current = onChange;

  const filter = (): IJobFilter => ({
    status,
    mine,
    text: text.trim(),
    labels: labels.split(',').map(l => l.trim()).filter(l => l),
    group,
    schedule: schedule.trim()
  });
  // Selects and the checkbox apply at once; typed text once it settles.
  React.useEffect(() => {
    if (mounted.current) {
      onChangeRef.current(filter());
    }
  }, [status, group, mine]);
  React.useEffect(() => {
    if (!mounted.current) {
      return;
    }
    const timer = window.setTimeout(() => onChangeRef.current(filter()), SETTLE_MS);
    return () => window.clearTimeout(timer);
  }, [text, labels, schedule]);
  React.useEffect(() => {
    mounted.current = true; // after the effects above ran once: the first render changed nothing
  }, []);

  return (
    <div className="jp-JobsPanel-filters" role="search" aria-label={trans.__('Filter jobs')}>
      <select
        className="jp-mod-styled jp-JobsPanel-status"
        aria-label={trans.__('status')}
        title={trans.__('Only jobs with this status')}
        value={status}
        onChange={event => setStatus(event.target.value)}
      >
        <option value="">{trans.__('All statuses')}</option>
        {STATUSES.map(s => (
          <option key={s} value={s}>
            {trans.__(s)}
          </option>
        ))}
      </select>
      {groups.length || admin ? (
        <select
          className="jp-mod-styled jp-JobsPanel-group"
          aria-label={trans.__('group')}
          title={trans.__("Only this group's jobs")}
          value={group}
          onChange={event => setGroup(event.target.value)}
        >
          <option value="">{trans.__('All groups')}</option>
          {groups.map(g => (
            <option key={g} value={g}>
              {g}
            </option>
          ))}
        </select>
      ) : null}
      <label className="jp-JobsPanel-mineLabel">
        <input type="checkbox" className="jp-JobsPanel-mine" checked={mine} onChange={event => setMine(event.target.checked)} />
        {trans.__('Submitted by me')}
      </label>
      <input
        className="jp-mod-styled jp-JobsPanel-search"
        type="search"
        placeholder={trans.__('Search name, command or id')}
        aria-label={trans.__('search name, command or id')}
        value={text}
        onChange={event => setText(event.target.value)}
      />
      <input
        className="jp-mod-styled jp-JobsPanel-label"
        placeholder={trans.__('Label key=value')}
        aria-label={trans.__('label key=value')}
        title={trans.__('Jobs with these labels, e.g. team=vision (several: team=vision, stage=train)')}
        value={labels}
        onChange={event => setLabels(event.target.value)}
      />
      <input
        className="jp-mod-styled jp-JobsPanel-schedule"
        placeholder={trans.__('Schedule id')}
        aria-label={trans.__('schedule')}
        title={trans.__('Only the runs of this schedule (`jupyter jobs schedule list` shows the ids)')}
        value={schedule}
        onChange={event => setSchedule(event.target.value)}
      />
    </div>
  );
}
