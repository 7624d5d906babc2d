/**
 * The seed's `backup` example: always fails, with errnr 32 and a message, to show how a failing
 * endpoint looks in the task's status.
 */
import type { HandleTask } from '../src';

export const handle_task: HandleTask = (_task, response) => {
  response.errnr = 32;
  response.errmsg = 'could not backup!';
  return response;
};
