import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  IChangesAnswer, IDataset, IInstanceType, IJob, IJobFilter, IJobPage, IOutput, ISchedule, IServerConfig
} from './tokens';

/** An error answered by the server; `message` is the server's own words. */
export class JobsAPIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errors: { field: string; message: string }[] = []
  ) {
    super(message);
  }
}

/** Call the jobs API; throws JobsAPIError carrying the server's message (never swallowed). */
export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'jupyter-jobs', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new JobsAPIError(
      'The jupyter-jobs server extension cannot be reached. Is it installed and enabled? ' +
        '(pip install jupyter_jobs, then restart Jupyter)',
      0
    );
  }
  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // a log or a file: returned as text
    }
  }
  if (!response.ok) {
    const message = (data && data.message) || response.statusText;
    throw new JobsAPIError(message, response.status, (data && data.errors) || []);
  }
  return data as T;
}

/** The jobs API, one method per route. */
export class JobsAPI {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  list(filter: IJobFilter, cursor: string | null = null, limit = 50): Promise<IJobPage> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (filter.status) {
      query.set('status', filter.status);
    }
    if (filter.mine) {
      query.set('owner', 'me');
    }
    if (filter.text) {
      query.set('text', filter.text);
    }
    for (const label of filter.labels) {
      query.append('label', label);
    }
    if (filter.group) {
      query.set('group', filter.group);
    }
    if (filter.schedule) {
      query.set('schedule', filter.schedule);
    }
    if (cursor) {
      query.set('cursor', cursor);
    }
    return requestAPI<IJobPage>(`jobs?${query}`, {}, this.settings);
  }

  /** Just these jobs (those the user may see; GET /jobs?ids=). */
  jobs(ids: number[]): Promise<IJobPage> {
    return requestAPI<IJobPage>(`jobs?ids=${ids.join(',')}`, {}, this.settings);
  }

  /**
   * The change feed (GET /changes): the jobs changed after `cursor`, answered as soon as one is, or after
   * `timeout` seconds with none. Without a cursor: the current one, at once.
   */
  changes(cursor: string | null, timeout: number, signal?: AbortSignal): Promise<IChangesAnswer> {
    const query = new URLSearchParams({ timeout: String(timeout) });
    if (cursor) {
      query.set('cursor', cursor);
    }
    return requestAPI<IChangesAnswer>(`changes?${query}`, { signal }, this.settings);
  }

  config(): Promise<IServerConfig> {
    return requestAPI<IServerConfig>('config', {}, this.settings);
  }

  get(id: number): Promise<IJob> {
    return requestAPI<IJob>(`jobs/${id}`, {}, this.settings);
  }

  submit(spec: { [key: string]: any }, baseDir?: string): Promise<IJob> {
    const query = baseDir ? `?base_dir=${encodeURIComponent(baseDir)}` : '';
    return requestAPI<IJob>(`jobs${query}`, { method: 'POST', body: JSON.stringify(spec) }, this.settings);
  }

  /** A schedule of ``spec``: it runs at every fire of ``cron``, read in ``timezone`` (the server's when empty). */
  createSchedule(spec: { [key: string]: any }, cron: string, timezone: string, baseDir = ''): Promise<ISchedule> {
    const body: { [key: string]: any } = { spec, cron };
    if (timezone) {
      body.timezone = timezone;
    }
    if (baseDir) {
      body.base_dir = baseDir; // its inputs are read (and kept for every run) from there
    }
    return requestAPI<ISchedule>('schedules', { method: 'POST', body: JSON.stringify(body) }, this.settings);
  }

  cancel(id: number): Promise<IJob> {
    return requestAPI<IJob>(`jobs/${id}/cancel`, { method: 'POST' }, this.settings);
  }

  /** Delete an ended job: its record, log and outputs (DELETE /jobs/{id}; 409 while it runs). */
  remove(id: number): Promise<void> {
    return requestAPI<void>(`jobs/${id}`, { method: 'DELETE' }, this.settings);
  }

  rerun(id: number, overrides: { [key: string]: any }): Promise<IJob> {
    return requestAPI<IJob>(
      `jobs/${id}/rerun`,
      { method: 'POST', body: JSON.stringify({ overrides }) },
      this.settings
    );
  }

  outputs(id: number): Promise<{ outputs: IOutput[]; missing: string[] }> {
    return requestAPI(`jobs/${id}/outputs`, {}, this.settings);
  }

  /** The bytes of one output file (GET /jobs/{id}/outputs/{path}). */
  async outputFile(id: number, path: string): Promise<Uint8Array> {
    const url = URLExt.join(
      this.settings.baseUrl, 'jupyter-jobs', 'api', 'jobs', String(id), 'outputs',
      ...path.split('/').map(encodeURIComponent)
    );
    const response = await ServerConnection.makeRequest(url, {}, this.settings);
    if (!response.ok) {
      let message = response.statusText;
      try {
        message = (await response.json()).message || message;
      } catch {
        // not JSON: the status says it
      }
      throw new JobsAPIError(message, response.status);
    }
    return new Uint8Array(await response.arrayBuffer());
  }

  instanceTypes(): Promise<IInstanceType[]> {
    return requestAPI<{ instance_types: IInstanceType[] }>('instance-types', {}, this.settings).then(
      r => r.instance_types
    );
  }

  datasets(): Promise<IDataset[]> {
    return requestAPI<{ datasets: IDataset[] }>('datasets', {}, this.settings).then(r => r.datasets);
  }

  /** A URL the browser can open (downloads use the session cookie). */
  absolute(path: string): string {
    return URLExt.join(this.settings.baseUrl, path.replace(this.settings.baseUrl, ''));
  }

  /**
   * Stream a job's log from `offset` until the job ends, calling `onText` as text arrives.
   * Resolves with the offset reached; stops early when `signal` aborts.
   */
  follow(id: number, offset: number, onText: (text: string) => void, signal: AbortSignal): Promise<number> {
    return this.stream(id, 'logs', offset, onText, signal);
  }

  /**
   * Stream one of a job's append-only files (`logs`, or `displays`: its rich outputs as JSON lines)
   * from byte `offset` until the job ends, calling `onText` as text arrives.
   * Reconnects from the last byte received, so there is no gap and no duplicate; one decoder spans
   * the reconnections, so a character cut by a dropped connection still arrives whole.
   * Resolves with the offset reached (also on a 4xx: no such job, or a server without the route);
   * stops early when `signal` aborts.
   */
  async stream(
    id: number,
    route: 'logs' | 'displays',
    offset: number,
    onText: (text: string) => void,
    signal: AbortSignal
  ): Promise<number> {
    let failures = 0;
    const decoder = new TextDecoder();
    const url = URLExt.join(this.settings.baseUrl, 'jupyter-jobs', 'api', 'jobs', String(id), route);
    while (!signal.aborted) {
      try {
        const response = await ServerConnection.makeRequest(
          `${url}?offset=${offset}&follow=1`,
          { signal },
          this.settings
        );
        if (!response.ok || !response.body) {
          throw new JobsAPIError(response.statusText, response.status);
        }
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) {
            onText(decoder.decode());
            return offset;
          }
          offset += value.byteLength;
          failures = 0;
          onText(decoder.decode(value, { stream: true }));
        }
      } catch (error) {
        // A client error (no such job, a bad offset) does not mend by retrying; a dropped
        // connection or a restarting server does.
        if (signal.aborted || (error instanceof JobsAPIError && error.status >= 400 && error.status < 500)) {
          return offset;
        }
        failures += 1;
        await new Promise(resolve => setTimeout(resolve, Math.min(10000, 250 * 2 ** failures)));
      }
    }
    return offset;
  }
}
