import { TranslationBundle } from '@jupyterlab/translation';
import { addIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { JobsModel } from './model';
import { IJob } from './tokens';
import { badge, elapsed, formatDuration, formatTime, h, labelChips } from './util';

const STATUSES = ['', 'Pending', 'Preparing', 'Running', 'Succeeded', 'Failed', 'Cancelled', 'Unknown'];

/** The "Jobs" sidebar: filters, a live list that pages, and buttons to create or open jobs. */
export class JobsPanel extends Widget {
  constructor(
    readonly model: JobsModel,
    private trans: TranslationBundle,
    private actions: { open: (job: IJob) => void; create: () => void }
  ) {
    super();
    this.id = 'jupyter-jobs-panel';
    this.addClass('jp-JobsPanel');
    this.title.caption = trans.__('Jobs');

    const header = h('div', 'jp-JobsPanel-header');
    header.append(h('span', 'jp-JobsPanel-title', trans.__('Jobs')));
    const create = h('button', 'jp-Button jp-mod-styled jp-mod-accept jp-JobsPanel-new');
    addIcon.element({ container: create, tag: 'span', elementPosition: 'left' });
    create.append(trans.__('New job'));
    create.onclick = () => this.actions.create();
    const refresh = h('button', 'jp-Button jp-mod-styled jp-mod-minimal jp-JobsPanel-refresh');
    refresh.title = trans.__('Refresh');
    refreshIcon.element({ container: refresh, tag: 'span' });
    refresh.onclick = () => this.model.poke();
    header.append(create, refresh);

    const filters = h('div', 'jp-JobsPanel-filters');
    this._status = h('select', 'jp-mod-styled jp-JobsPanel-status');
    this._status.setAttribute('aria-label', trans.__('status'));
    this._status.title = trans.__('Only jobs in this status');
    for (const status of STATUSES) {
      const option = h('option', '', status ? trans.__(status) : trans.__('All statuses'));
      option.value = status;
      this._status.append(option);
    }
    this._mine = h('input');
    this._mine.type = 'checkbox';
    this._mine.className = 'jp-JobsPanel-mine';
    const mineLabel = h('label', 'jp-JobsPanel-mineLabel');
    mineLabel.append(this._mine, trans.__('Submitted by me'));
    this._search = h('input', 'jp-mod-styled jp-JobsPanel-search');
    this._search.placeholder = trans.__('Search name, command or id');
    this._search.setAttribute('aria-label', trans.__('search'));
    this._label = h('input', 'jp-mod-styled jp-JobsPanel-label');
    this._label.placeholder = trans.__('Label key=value');
    this._label.setAttribute('aria-label', trans.__('label key=value'));
    this._label.title = trans.__('Jobs with these labels, e.g. team=vision (several: team=vision, stage=train)');
    // Shown where jobs have groups (a JupyterHub team): the caller's groups, and those seen in the list.
    this._group = h('select', 'jp-mod-styled jp-JobsPanel-group');
    this._group.setAttribute('aria-label', trans.__('group'));
    this._group.title = trans.__("Only this group's jobs");
    this._group.hidden = true;
    this._schedule = h('input', 'jp-mod-styled jp-JobsPanel-schedule');
    this._schedule.placeholder = trans.__('Schedule id');
    this._schedule.setAttribute('aria-label', trans.__('schedule'));
    this._schedule.title = trans.__('Only the runs of this schedule (`jupyter jobs schedule list` shows the ids)');
    const update = () =>
      (this.model.filter = {
        status: this._status.value,
        mine: this._mine.checked,
        text: this._search.value.trim(),
        labels: this._label.value.split(',').map(l => l.trim()).filter(l => l),
        group: this._group.value,
        schedule: this._schedule.value.trim()
      });
    this._status.onchange = update;
    this._group.onchange = update;
    this._mine.onchange = update;
    let timer = 0;
    this._search.oninput = this._label.oninput = this._schedule.oninput = () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(update, 300);
    };
    filters.append(this._status, this._group, mineLabel, this._search, this._label, this._schedule);
    void model.api
      .config()
      .then(config => {
        this._admin = config.admin;
        this._groups(config.groups ?? []);
      })
      .catch(() => undefined); // the list says what is wrong

    this._error = h('div', 'jp-JobsPanel-error');
    this._list = h('ul', 'jp-JobsPanel-list');
    this._more = h('button', 'jp-Button jp-mod-styled jp-JobsPanel-more', trans.__('Load more'));
    this._more.onclick = () => void this.model.more();
    this.node.append(header, filters, this._error, this._list, this._more);
    model.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const trans = this.trans;
    this._error.textContent = this.model.error ? trans.__('Cannot list jobs: %1', this.model.error) : '';
    // jp-Button sets `display`, which beats the `hidden` attribute.
    this._more.style.display = this.model.hasMore ? '' : 'none';
    const items = this.model.jobs.map(job => {
      const item = h('li', 'jp-JobsPanel-item');
      item.dataset.jobId = String(job.id);
      item.dataset.status = job.status;
      item.tabIndex = 0;
      const top = h('div', 'jp-JobsPanel-itemTop');
      top.append(badge(job), h('span', 'jp-JobsPanel-name', job.name), h('span', 'jp-JobsPanel-id', `#${job.id}`));
      const who = job.group ? `${job.owner} (${job.group})` : job.owner;
      const meta = h(
        'div',
        'jp-JobsPanel-meta',
        `${job.instance_type} · ${who} · ${formatTime(job.started_at)} · ${formatDuration(elapsed(job))}`
      );
      item.append(top, meta);
      if (job.schedule_id) {
        const schedule = h('div', 'jp-JobsPanel-schedule', trans.__('Schedule #%1', job.schedule_id));
        schedule.title = trans.__('Fired by schedule %1', job.schedule_id);
        item.append(schedule);
      }
      const chips = labelChips(job);
      if (chips.length) {
        const labels = h('div', 'jp-JobsLabels jp-JobsPanel-labels');
        labels.append(...chips);
        item.append(labels);
      }
      if (job.status === 'Pending' && job.message) {
        item.append(h('div', 'jp-JobsPanel-reason', job.message));
      }
      item.onclick = () => this.actions.open(job);
      item.onkeydown = event => event.key === 'Enter' && this.actions.open(job);
      return item;
    });
    if (!items.length && !this.model.error) {
      items.push(h('li', 'jp-JobsPanel-empty', trans.__('No jobs yet. Create one, or run a notebook as a job.')) as any);
    }
    this._list.replaceChildren(...items);
    this._groups(this.model.jobs.map(job => job.group ?? ''));
  }

  /** Add these groups to the group filter (shown once there is one, or for an admin). */
  private _groups(groups: string[]): void {
    const known = new Set(Array.from(this._group.options, option => option.value));
    const added = groups.filter(group => group && !known.has(group)).sort();
    if (!known.size && (added.length || this._admin)) {
      const all = h('option', '', this.trans.__('All groups'));
      all.value = '';
      this._group.append(all);
    }
    for (const group of added) {
      const option = h('option', '', group);
      option.value = group;
      this._group.append(option);
    }
    this._group.hidden = this._group.options.length === 0;
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }

  private _status: HTMLSelectElement;
  private _mine: HTMLInputElement;
  private _search: HTMLInputElement;
  private _label: HTMLInputElement;
  private _group: HTMLSelectElement;
  private _schedule: HTMLInputElement;
  private _admin = false;
  private _error: HTMLDivElement;
  private _list: HTMLUListElement;
  private _more: HTMLButtonElement;
}
