import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { IJob } from '../tokens';
import { hasEnded } from './rowActions';

export interface IBulkBarProps {
  trans: TranslationBundle;
  selected: IJob[];
  cancel: (jobs: IJob[]) => void;
  remove: (jobs: IJob[]) => void;
  clear: () => void;
}

/** What to do with the selected jobs: "Cancel N" (those not ended), "Delete N"; shown while some are selected. */
export function BulkBar({ trans, selected, cancel, remove, clear }: IBulkBarProps): JSX.Element | null {
  if (!selected.length) {
    return null;
  }
  const unfinished = selected.filter(job => !hasEnded(job));
  return (
    <div className="jp-JobsTable-bulk" role="toolbar" aria-label={trans.__('Selected jobs')}>
      <span className="jp-JobsTable-bulkCount">{trans._n('%1 selected', '%1 selected', selected.length)}</span>
      <button
        type="button"
        className="jp-Button jp-mod-styled jp-mod-warn jp-JobsTable-bulkCancel"
        disabled={!unfinished.length}
        title={trans.__('Cancel the selected jobs that have not ended')}
        onClick={() => cancel(unfinished)}
      >
        {trans.__('Cancel %1', unfinished.length)}
      </button>
      <button
        type="button"
        className="jp-Button jp-mod-styled jp-mod-warn jp-JobsTable-bulkDelete"
        title={trans.__('Delete the selected jobs (a job that has not ended is not deleted)')}
        onClick={() => remove(selected)}
      >
        {trans.__('Delete %1', selected.length)}
      </button>
      <button type="button" className="jp-Button jp-mod-styled jp-mod-minimal jp-JobsTable-bulkClear" onClick={clear}>
        {trans.__('Clear selection')}
      </button>
    </div>
  );
}
