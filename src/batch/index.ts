export { GroupCommit, type GroupCommitOptions, type GroupResults } from './group-commit';
