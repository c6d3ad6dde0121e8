import { IJob } from '../tokens';

/**
 * What a screen reader hears of a refresh: "Job 12 train: Succeeded" for each listed job whose status
 * changed since the last list (`before`: id → status; updated in place). Jobs new to the list, or gone
 * from it (a filter changed, a page loaded), are not announced.
 */
export function statusChanges(before: Map<number, string>, jobs: IJob[], say: (job: IJob) => string): string[] {
  const lines: string[] = [];
  const seen = new Set<number>();
  for (const job of jobs) {
    seen.add(job.id);
    const was = before.get(job.id);
    if (was !== undefined && was !== job.status) {
      lines.push(say(job));
    }
    before.set(job.id, job.status);
  }
  for (const id of Array.from(before.keys())) {
    if (!seen.has(id)) {
      before.delete(id);
    }
  }
  return lines;
}
