import { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { JobsModel } from './model';
import { JobsView } from './table/JobsView';
import { IRowActionContext } from './table/rowActions';

/**
 * The "Jobs" sidebar: a Lumino widget around the React job table (src/table/): filters, the table with
 * its row and bulk actions, Load more.
 */
export class JobsPanel extends ReactWidget {
  constructor(
    readonly model: JobsModel,
    private trans: TranslationBundle,
    private actions: IRowActionContext & { create: () => void }
  ) {
    super();
    this.id = 'jupyter-jobs-panel';
    this.addClass('jp-JobsPanel');
    this.title.caption = trans.__('Jobs');
  }

  protected render(): JSX.Element {
    return React.createElement(JobsView, { model: this.model, trans: this.trans, actions: this.actions });
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
