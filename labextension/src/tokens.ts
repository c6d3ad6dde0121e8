/** Shapes of the jupyter-jobs REST API (docs/api/openapi.yaml). */

/** Status of a job, as the server names it. */
export type JobStatus =
  | 'Pending'
  | 'Preparing'
  | 'Running'
  | 'Succeeded'
  | 'Failed'
  | 'Cancelled'
  | 'Unknown';

/** Statuses after which nothing changes any more. */
export const TERMINAL: ReadonlyArray<JobStatus> = ['Succeeded', 'Failed', 'Cancelled', 'Unknown'];

/** A job record. */
export interface IJob {
  id: number;
  name: string;
  owner: string;
  /** The group it counts against (PrimeHub's): members see it; '' when none. */
  group?: string;
  status: JobStatus;
  /** Why it failed, or why it is still pending. */
  message: string;
  instance_type: string;
  image: string | null;
  command: string;
  exit_code: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  durations: { queued: number | null; preparing: number | null; running: number | null };
  attempt: number;
  max_attempts: number;
  rerun_of: number | null;
  /** The schedule that fired it; null for a job submitted by hand. */
  schedule_id?: number | null;
  gpus: number[];
  datasets: string[];
  /** How many output files it has (in list rows, which leave out the `outputs` list itself). */
  outputs_count?: number;
  spec: { [key: string]: any };
  /** What the spec says the job is for. */
  desc?: string;
  /** Free key/values the list filters on (GET /jobs?label=key=value). */
  labels?: { [key: string]: string };
  /** What translating a spec written for another platform left out, one line each. */
  warnings?: string[];
  /** Kept by retention whatever its age (`jupyter jobs pin`). */
  pinned?: boolean;
  /** When retention removed its log, displays and outputs (seconds since the epoch); null while they are there. */
  data_removed_at?: number | null;
  /** When retention will remove them; null when it never will (kept, pinned, not ended). */
  data_expires_at?: number | null;
  /** When retention will remove the job itself; null when it never will. */
  record_expires_at?: number | null;
  url: string;
}

/** One page of jobs. */
export interface IJobPage {
  jobs: IJob[];
  next_cursor: string | null;
}

/** An answer of the change feed (GET /changes). */
export interface IChangesAnswer {
  cursor: string;
  changes: { id: number; deleted: boolean }[];
  reset: boolean;
}

/** An instance type jobs may ask for. */
export interface IInstanceType {
  name: string;
  cpus: number;
  memory_mib: number;
  gpus: number;
  description: string;
  default: boolean;
}

/** A dataset jobs may read. */
export interface IDataset {
  name: string;
  path: string;
  description: string;
}

/** An output file of a job. */
export interface IOutput {
  path: string;
  size: number;
  /** Present only for symbolic links, which the server never follows nor serves. */
  type?: 'symlink';
  url: string;
}

/** Filters of the job list. */
export interface IJobFilter {
  status: string;
  mine: boolean;
  text: string;
  /** `key=value` each; a job must have all of them. */
  labels: string[];
  /** Only this group's jobs ('' for all). */
  group?: string;
  /** Only the runs of this schedule (its id; '' for all). */
  schedule?: string;
}

/** A schedule: a spec fired by a cron expression in a time zone (POST /schedules). */
export interface ISchedule {
  id: number;
  name: string;
  owner: string;
  cron: string;
  timezone: string;
  paused: boolean;
  /** The next fire times, ISO 8601 in its time zone (none while paused). */
  next_runs: string[];
  last_job_id: number | null;
  /** The latest fire that started no run, and why. */
  last_skipped: { at: number; reason: string } | null;
  url: string;
}

/** What `GET /config` says of the caller (the rest of it describes the server). */
export interface IServerConfig {
  user: string;
  /** An admin of jobs: sees and acts on every user's. */
  admin: boolean;
  /** The caller's groups (from JupyterHub); none on a single-user server. */
  groups?: string[];
}
