import { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
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

  /** Shown from its tab or the "Show Jobs" command: the keyboard goes to the search box (unless already inside). */
  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    if (!this.node.contains(document.activeElement)) {
      this.focusSearch();
    }
  }

  /** Put the keyboard in the search box. */
  focusSearch(): void {
    this.node.querySelector<HTMLInputElement>('.jp-JobsPanel-search')?.focus();
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
