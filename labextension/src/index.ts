import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  Notification,
  ToolbarButton,
  showErrorMessage
} from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon, runIcon } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

import { JobDetail } from './detail';
import { JobFeed } from './feed';
import { CreateJobForm } from './form';
import { JobsAPI } from './handler';
import { JobsModel } from './model';
import { notifyEnded } from './notify';
import { openOutput } from './open';
import { JobsPanel } from './panel';
import { JOB_MIME_TYPE, JobRenderer } from './renderer';
import { IJob, IOutput } from './tokens';
import { JobWatcher } from './watcher';

const jobsIcon = new LabIcon({
  name: 'jupyter-jobs:jobs',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
    'd="M4 4h16v4H4zm0 6h16v4H4zm0 6h10v4H4zm13 0h3v4h-3z"/></svg>'
});

/** The id of the main plugin, and of its settings (schema/plugin.json): notifications, rowsPerPage. */
const PLUGIN_ID = 'jupyter-jobs:plugin';

/** Read the settings of jupyter-jobs, now and at each change; nothing when Lab has no settings registry. */
function watchSettings(registry: ISettingRegistry | null, apply: (settings: ISettingRegistry.ISettings) => void): void {
  void registry
    ?.load(PLUGIN_ID)
    .then(settings => {
      apply(settings);
      settings.changed.connect(apply);
    })
    .catch(error => console.warn('jupyter-jobs: cannot read the settings', error));
}

namespace CommandIDs {
  export const open = 'jupyter-jobs:open';
  /** The page of one job: args `{id: number}`. */
  export const openJob = 'jupyter-jobs:open-job';
  export const create = 'jupyter-jobs:create';
  export const runNotebook = 'jupyter-jobs:run-notebook';
  /** A schedule that runs a notebook headless at the times of a cron: args `{path: string}`. */
  export const scheduleNotebook = 'jupyter-jobs:schedule-notebook';
}

/** What every part of the extension in one Lab shares: the API, the one change feed, the one job watcher. */
interface IShared {
  api: JobsAPI;
  feed: JobFeed;
  watcher: JobWatcher;
}
const sharedByApp = new WeakMap<JupyterFrontEnd, IShared>();

/** The API, change feed and job watcher of this Lab, made by whichever plugin asks first. */
function shared(app: JupyterFrontEnd): IShared {
  let found = sharedByApp.get(app);
  if (!found) {
    const api = new JobsAPI(app.serviceManager.serverSettings);
    const feed = new JobFeed(api);
    found = { api, feed, watcher: new JobWatcher(api, feed) };
    sharedByApp.set(app, found);
  }
  return found;
}

/** The spec of a notebook job: run it headless, bring the executed notebook back. */
export function notebookSpec(path: string): { spec: { [key: string]: any }; baseDir: string } {
  const name = PathExt.basename(path);
  const stem = PathExt.basename(path, '.ipynb');
  const executed = `${stem}.executed.ipynb`;
  const quoted = `'${name.replace(/'/g, "'\\''")}'`;
  return {
    baseDir: PathExt.dirname(path),
    spec: {
      name: stem,
      cmd: `python -m jupyter_jobs_jobside.notebook ${quoted} "$JOB_OUTPUTS/${executed}"`,
      inputs: [name],
      outputs: [executed],
      // The server's own Python and packages (those of the notebooks it runs), on any backend.
      env: { python: 'auto' }
    }
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'A sidebar to list, create, follow, cancel and rerun jobs.',
  autoStart: true,
  optional: [ITranslator, ILayoutRestorer, ICommandPalette, IFileBrowserFactory, IRenderMimeRegistry, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    translator: ITranslator | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    browserFactory: IFileBrowserFactory | null,
    rendermime: IRenderMimeRegistry | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyter_jobs');
    const { api, feed, watcher } = shared(app);
    const model = new JobsModel(api, feed);
    watchSettings(settingRegistry, settings => (model.pageSize = settings.get('rowsPerPage').composite as number));
    const details = new Map<number, MainAreaWidget<JobDetail>>();

    const open = (job: Pick<IJob, 'id'>) => {
      let widget = details.get(job.id);
      if (!widget || widget.isDisposed) {
        const content = new JobDetail(
          api,
          trans,
          job.id,
          {
            changed: () => model.poke(),
            open,
            openOutput: (id: number, output: IOutput) => void openOutput(app, api, trans, id, output),
            deleted: (id: number) => details.get(id)?.dispose()
          },
          rendermime,
          watcher
        );
        widget = new MainAreaWidget({ content });
        widget.id = `jupyter-jobs-job-${job.id}`;
        widget.title.label = content.title.label;
        widget.title.icon = jobsIcon;
        details.set(job.id, widget);
        app.shell.add(widget, 'main');
      }
      app.shell.activateById(widget.id);
    };

    const panel = new JobsPanel(model, trans, {
      api,
      trans,
      open,
      openOutput: (id: number, output: IOutput) => void openOutput(app, api, trans, id, output),
      changed: () => model.poke(),
      create: () => void app.commands.execute(CommandIDs.create)
    });
    panel.title.icon = jobsIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'jupyter-jobs-panel');

    let form: MainAreaWidget<CreateJobForm> | null = null;
    app.commands.addCommand(CommandIDs.create, {
      label: trans.__('New Job…'),
      caption: trans.__('Create a job'),
      icon: jobsIcon,
      execute: () => {
        if (!form || form.isDisposed) {
          const browser = () => browserFactory?.tracker.currentWidget ?? null;
          const content = new CreateJobForm(
            api,
            trans,
            job => {
              model.poke();
              form?.dispose();
              open(job);
            },
            {
              contents: app.serviceManager.contents,
              selection: browserFactory ? () => Array.from(browser()?.selectedItems() ?? [], item => item.path) : undefined,
              manager: browserFactory ? () => browser()?.model.manager : undefined
            }
          );
          form = new MainAreaWidget({ content });
          form.id = 'jupyter-jobs-create-main';
          form.title.label = content.title.label;
          form.title.icon = jobsIcon;
          app.shell.add(form, 'main');
        }
        app.shell.activateById(form.id);
      }
    });
    app.commands.addCommand(CommandIDs.openJob, {
      label: args => trans.__('Open Job %1', (args.id as number) ?? ''),
      execute: args => {
        const id = Number(args.id);
        if (Number.isSafeInteger(id) && id > 0) {
          open({ id });
        }
      }
    });
    app.commands.addCommand(CommandIDs.open, {
      label: trans.__('Show Jobs'),
      execute: () => {
        app.shell.activateById(panel.id);
        // Run from the command palette, the palette gives the focus back to the main area once the command
        // is done (and after the panel's own activation): the search box takes it after that.
        requestAnimationFrame(() => requestAnimationFrame(() => panel.focusSearch()));
      }
    });

    const runNotebook = async (path: string) => {
      const { spec, baseDir } = notebookSpec(path);
      try {
        const job = await api.submit(spec, baseDir);
        model.poke();
        open(job);
      } catch (error) {
        await showErrorMessage(trans.__('Could not run %1 as a job', path), (error as Error).message);
      }
    };
    app.commands.addCommand(CommandIDs.runNotebook, {
      label: trans.__('Run as Job'),
      caption: trans.__('Run this notebook headless as a job'),
      icon: runIcon,
      execute: args => {
        let path = args.path as string | undefined;
        if (!path && browserFactory) {
          const selected = browserFactory.tracker.currentWidget?.selectedItems().next();
          path = selected && !selected.done ? selected.value.path : undefined;
        }
        if (path) {
          return runNotebook(path);
        }
      }
    });
    app.contextMenu.addItem({
      command: CommandIDs.runNotebook,
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 10
    });

    const scheduleNotebook = async (path: string) => {
      const cron = await InputDialog.getText({
        title: trans.__('Schedule %1 as a job', PathExt.basename(path)),
        label: trans.__('When (cron, in the server\'s time zone): 0 3 * * * is every day at 3:00'),
        placeholder: '0 3 * * *'
      });
      if (!cron.button.accept || !cron.value?.trim()) {
        return;
      }
      const { spec, baseDir } = notebookSpec(path);
      try {
        const made = await api.createSchedule(spec, cron.value.trim(), '', baseDir);
        Notification.success(
          trans.__('Schedule %1 runs %2 at %3 (%4); next: %5', made.id, path, made.cron, made.timezone,
            made.next_runs[0] ?? '-'),
          { autoClose: 8000 }
        );
        model.poke();
      } catch (error) {
        await showErrorMessage(trans.__('Could not schedule %1', path), (error as Error).message);
      }
    };
    app.commands.addCommand(CommandIDs.scheduleNotebook, {
      label: trans.__('Schedule as Job…'),
      caption: trans.__('Run this notebook headless as a job at the times of a cron'),
      execute: args => {
        let path = args.path as string | undefined;
        if (!path && browserFactory) {
          const selected = browserFactory.tracker.currentWidget?.selectedItems().next();
          path = selected && !selected.done ? selected.value.path : undefined;
        }
        if (path) {
          return scheduleNotebook(path);
        }
      }
    });
    app.contextMenu.addItem({
      command: CommandIDs.scheduleNotebook,
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 11
    });
    app.docRegistry.addWidgetExtension('Notebook', new RunAsJobButton(app, trans.__('Run as Job')));
    app.docRegistry.addWidgetExtension(
      'Notebook',
      new RunAsJobButton(app, trans.__('Schedule…'), CommandIDs.scheduleNotebook, 'jp-JobsScheduleJob', 11, 'scheduleAsJob')
    );
    palette?.addItem({ command: CommandIDs.create, category: trans.__('Jobs') });
    palette?.addItem({ command: CommandIDs.open, category: trans.__('Jobs') });
  }
};

/** A button in every notebook's toolbar: "Run as Job", or "Schedule…" (a command given the notebook's path). */
class RunAsJobButton implements DocumentRegistry.IWidgetExtension<NotebookPanel, any> {
  constructor(
    private app: JupyterFrontEnd,
    private label: string,
    private command: string = CommandIDs.runNotebook,
    private className = 'jp-JobsRunAsJob',
    private rank = 10,
    private item = 'runAsJob'
  ) {}

  createNew(panel: NotebookPanel, context: DocumentRegistry.IContext<any>): IDisposable {
    const button = new ToolbarButton({
      className: this.className,
      icon: this.command === CommandIDs.runNotebook ? jobsIcon : undefined,
      label: this.label,
      tooltip: this.label,
      onClick: () => {
        void context.save().then(() => this.app.commands.execute(this.command, { path: context.path }));
      }
    });
    panel.toolbar.insertItem(this.rank, this.item, button);
    return new DisposableDelegate(() => button.dispose());
  }
}

/**
 * Jobs in notebooks: the renderer of `application/vnd.jupyter-jobs.job+json` outputs, live from the
 * server (so it outlives kernels and comes back with a reopened notebook), and a notification when a
 * job shown in an open notebook ends.
 */
const renderer: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-jobs:renderer',
  description: 'Renders jobs in notebooks, live, and tells when they end.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [INotebookTracker, ITranslator, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    notebooks: INotebookTracker | null,
    translator: ITranslator | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyter_jobs');
    const { api, watcher } = shared(app);
    const openJob = (id: number) => void app.commands.execute(CommandIDs.openJob, { id });
    const openJobOutput = (id: number, output: IOutput) => void openOutput(app, api, trans, id, output);
    const services = { api, watcher, trans, rendermime, notebooks, openJob, openOutput: openJobOutput };
    rendermime.addFactory(
      {
        // Safe: it shows only what the server says of the job id, and the job's outputs untrusted. So
        // it renders in notebooks that are not trusted, as every reopened notebook is.
        safe: true,
        mimeTypes: [JOB_MIME_TYPE],
        // Lower ranks win; the ipywidgets view of the same job (same bundle) has rank 0, so Lab shows
        // ours while front ends without this extension show the widget.
        defaultRank: -10,
        createRenderer: () => new JobRenderer(services)
      },
      -10
    );
    let notify = true; // the `notifications` setting
    watchSettings(settingRegistry, settings => (notify = settings.get('notifications').composite !== false));
    watcher.ended.connect((_, job) => notify && notifyEnded(job, trans, openJob));
  }
};

export default [plugin, renderer];
export { Widget };
