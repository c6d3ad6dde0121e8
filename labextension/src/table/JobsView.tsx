import { TranslationBundle } from '@jupyterlab/translation';
import { addIcon, refreshIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { JobsModel } from '../model';
import { IJob } from '../tokens';
import { statusChanges } from './announce';
import { BulkBar } from './BulkBar';
import { Filters } from './Filters';
import { JobTable } from './JobTable';
import { IRowActionContext, bulkCancel, bulkDelete, cancelRow, deleteRow, openOutputsRow, rerunRow } from './rowActions';

/** From this width on (px) the panel shows PrimeHub's columns; below it, compact two-line rows. */
export const WIDE_FROM = 560;

export interface IJobsViewProps {
  model: JobsModel;
  trans: TranslationBundle;
  actions: IRowActionContext & { create: () => void };
}

/** The panel's width, watched (the sidebar is resized by dragging its edge). */
function useWidth(node: React.RefObject<HTMLElement>): number {
  const [width, setWidth] = React.useState(0);
  React.useLayoutEffect(() => {
    const element = node.current;
    if (!element) {
      return;
    }
    const observer = new ResizeObserver(entries => setWidth(Math.round(entries[0].contentRect.width)));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return width;
}

/** The list as the model has it, again after each change the model signals. */
function useModel(model: JobsModel): { jobs: IJob[]; loadedAt: number; error: string | null; hasMore: boolean } {
  const read = () => ({ jobs: model.jobs, loadedAt: model.loadedAt, error: model.error, hasMore: model.hasMore });
  const [state, setState] = React.useState(read);
  React.useEffect(() => {
    const update = () => setState(read());
    model.changed.connect(update);
    update();
    return () => {
      model.changed.disconnect(update);
    };
  }, [model]);
  return state;
}

/**
 * The Jobs sidebar: a header (New job, Refresh), sticky filters and bulk actions, the job table (which
 * scrolls under them), Load more, and a polite live region that says when a listed job's status changes.
 */
export function JobsView({ model, trans, actions }: IJobsViewProps): JSX.Element {
  const root = React.useRef<HTMLDivElement>(null);
  const wide = useWidth(root) >= WIDE_FROM;
  const { jobs, loadedAt, error, hasMore } = useModel(model);
  const [selected, setSelected] = React.useState<Set<number>>(() => new Set());
  const [config, setConfig] = React.useState({ singleUser: true, admin: false, groups: [] as string[] });
  React.useEffect(() => {
    model.api
      .config()
      .then(c => {
        const groups = c.groups ?? [];
        setConfig({ singleUser: !c.admin && !groups.length, admin: c.admin, groups });
      })
      .catch(() => undefined); // the list says what is wrong
  }, [model]);

  // "Job 12 train: Succeeded", for each listed job whose status changed.
  const statuses = React.useRef<Map<number, string> | null>(null);
  const [announcement, setAnnouncement] = React.useState('');
  React.useEffect(() => {
    if (!statuses.current) {
      statuses.current = new Map(jobs.map(job => [job.id, job.status]));
      return;
    }
    const lines = statusChanges(statuses.current, jobs, job => trans.__('Job %1 %2: %3', job.id, job.name, job.status));
    if (lines.length) {
      setAnnouncement(lines.join('. '));
    }
  }, [jobs]);

  const groups = React.useMemo(() => {
    const all = new Set(config.groups);
    jobs.forEach(job => job.group && all.add(job.group));
    return Array.from(all).sort();
  }, [jobs, config.groups]);
  const selectedJobs = jobs.filter(job => selected.has(job.id));

  return (
    <div ref={root} className={`jp-JobsView ${wide ? 'jp-mod-wide' : 'jp-mod-narrow'}`}>
      <div className="jp-JobsPanel-top">
        <div className="jp-JobsPanel-header">
          <span className="jp-JobsPanel-title">{trans.__('Jobs')}</span>
          <button type="button" className="jp-Button jp-mod-styled jp-mod-accept jp-JobsPanel-new" onClick={actions.create}>
            <addIcon.react tag="span" elementPosition="left" />
            {trans.__('New job')}
          </button>
          <button
            type="button"
            className="jp-Button jp-mod-styled jp-mod-minimal jp-JobsPanel-refresh"
            title={trans.__('Refresh')}
            aria-label={trans.__('Refresh')}
            onClick={() => model.poke()}
          >
            <refreshIcon.react tag="span" />
          </button>
        </div>
        <Filters trans={trans} groups={groups} admin={config.admin} onChange={filter => (model.filter = filter)} />
        <BulkBar
          trans={trans}
          selected={selectedJobs}
          cancel={list => void bulkCancel(actions, list).then(() => setSelected(new Set()))}
          remove={list => void bulkDelete(actions, list).then(() => setSelected(new Set()))}
          clear={() => setSelected(new Set())}
        />
        {error ? (
          <div className="jp-JobsPanel-error" role="alert">
            {trans.__('Cannot list jobs: %1', error)}
          </div>
        ) : null}
      </div>
      <div className="jp-JobsPanel-scroll">
        {jobs.length ? (
          <JobTable
            jobs={jobs}
            loadedAt={loadedAt}
            trans={trans}
            wide={wide}
            singleUser={config.singleUser}
            selected={selected}
            setSelected={setSelected}
            open={actions.open}
            cancel={job => void cancelRow(actions, job)}
            remove={job => void deleteRow(actions, job)}
            rerun={job => void rerunRow(actions, job)}
            outputs={job => void openOutputsRow(actions, job)}
          />
        ) : !error ? (
          <div className="jp-JobsPanel-empty">{trans.__('No jobs yet. Create one, or run a notebook as a job.')}</div>
        ) : null}
        {hasMore ? (
          <button type="button" className="jp-Button jp-mod-styled jp-JobsPanel-more" onClick={() => void model.more()}>
            {trans.__('Load more')}
          </button>
        ) : null}
      </div>
      <div className="jp-JobsTable-live" role="status" aria-live="polite" aria-atomic="true">
        {announcement}
      </div>
    </div>
  );
}
