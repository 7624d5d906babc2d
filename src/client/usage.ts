/**
 * `tasker <client command> --help`.
 */
export const CLIENT_USAGE = `usage: tasker <command> [options]   (talks to a tasker server; reads no configuration)

  send TYPE (--endpoints a,b | --select role=web,dc=fra1 | --select '*' | --broadcast)
       [--online] [--payload @file.json | --payload JSON] [key=value …] [--id IDENTIFIER]
       [--batch N|P% [--max-errors N|P%] [--pause 30s]] [--success-threshold N|P%]
       [--priority 0-9] [--wait]
                      post a task; key=value sets a payload field (a JSON value, else text;
                      a.b=1 nests); --wait: watch it to its end
  get TYPE IDENTIFIER the task and every endpoint's state
  watch TYPE IDENTIFIER
                      follow the task to its end
  list [TYPE] [--status S,…] [--endpoint NAME] [--since T] [--until T] [--id-prefix P]
       [--limit N] [--cursor C]
                      tasks, newest first
  cancel TYPE IDENTIFIER [--endpoints a,b] [--reason TEXT]
  retry TYPE IDENTIFIER [--endpoints a,b] [--wait]
                      run again the endpoints that did not succeed
  endpoints [NAME] [--type T] [--label k=v …] [--status S,…] [--version V] [--limit N] [--after NAME]
                      the fleet, or one endpoint and its latest tasks
  schedules           the server's schedules

options of every client command:
  --url URL           the server (default $TASKER_URL, else http://localhost:8888)
  --token TOKEN       its API token (default $TASKER_TOKEN)
  --json              the API's JSON instead of text (send --wait, watch, get: with "summary")

On a terminal, --wait and watch redraw a live view in place; elsewhere they print a line per
change. Either way a summary follows: targeted, returned, did not return, failures by errnr.
Exit codes: 0 DONE, 1 FAILED, 2 INCOMPLETE, 3 CANCELLED, 4 usage or connection error, 130 when
Ctrl-C stops the watching (the task goes on). get exits with the task's outcome once it is
final, 0 while it runs. More: docs/cli.md
`;
