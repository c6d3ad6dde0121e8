export { CreateJobForm } from './widget';
export type { IFileSource } from './files';
