#!/usr/bin/env bash
# Create (or update) RabbitMQ users for tasker with least privilege. Idempotent.
#
#   scripts/broker-users.sh server USER [PASSWORD]   full rights on <prefix>.* (declares topology)
#   scripts/broker-users.sh agent ENDPOINT [PASSWORD]
#       user <agent-user-prefix><ENDPOINT>: may declare, bind and read only its own queues
#       (and its control queue <prefix>.control.<ENDPOINT>, for cancels)
#       <prefix>.<type>.<ENDPOINT>, and publish only to <prefix>.results (and <prefix>.dead,
#       which RabbitMQ requires of whoever declares a queue that dead-letters there). It
#       cannot publish tasks, read another endpoint's queue, or see other endpoints' results.
#       With --types, only the queues of those task types: without it, any type name.
#   scripts/broker-users.sh delete USER
#
# Without PASSWORD (or with -) the password is the first line of standard input, and it reaches
# rabbitmqctl on its standard input too, so it never shows in the process list:
#   printf '%s\n' "$pw" | scripts/broker-users.sh agent web1
# Options (before the command): --vhost V (default /), --prefix P (default tasker),
# --agent-user-prefix X (default tasker-agent-, as server.agent_user_prefix), --types T1,T2
# (the task types an agent serves; run again when they change).
# Needs rabbitmqctl and the rights to run it (root or the rabbitmq user).
set -euo pipefail

vhost=/
prefix=tasker
agent_user_prefix=tasker-agent-
types=
while [ $# -gt 0 ]; do
  case "$1" in
    --vhost) vhost=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --agent-user-prefix) agent_user_prefix=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    *) break ;;
  esac
done

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage

ctl() { rabbitmqctl -q "$@"; }
# regex-escape a literal (names allow letters, digits, '.', '_', '-')
esc() { printf '%s' "$1" | sed 's/[.]/\\./g'; }

ensure_vhost() {
  if ! ctl list_vhosts --no-table-headers | grep -qxF "$vhost"; then ctl add_vhost "$vhost"; fi
}

# the password argument, or the first line of standard input when it is absent or "-".
# rabbitmqctl trims what it reads from standard input, so a password that starts or ends with
# white space would be stored other than given: refused, like an empty one.
password_of() { # [password]
  local password=
  if [ $# -ge 1 ] && [ "$1" != - ]; then
    password=$1
  else
    IFS= read -r password || true
  fi
  if [ -z "$password" ]; then
    echo "no password: give it as an argument or on the first line of standard input" >&2
    exit 2
  fi
  if [[ $password =~ ^[[:space:]] || $password =~ [[:space:]]$ ]]; then
    echo "the password starts or ends with white space, which rabbitmqctl would drop" >&2
    exit 2
  fi
  printf '%s' "$password"
}

ensure_user() { # user password (handed to rabbitmqctl on its standard input)
  if ctl list_users --no-table-headers | awk '{print $1}' | grep -qxF "$1"; then
    printf '%s' "$2" | ctl change_password "$1" >/dev/null
  else
    printf '%s' "$2" | ctl add_user "$1" >/dev/null
  fi
}

p=$(esc "$prefix")
type_re='[a-z][a-z0-9_-]*'
if [ -n "$types" ]; then
  if ! [[ "$types" =~ ^[a-z][a-z0-9_-]{0,31}(,[a-z][a-z0-9_-]{0,31})*$ ]]; then
    echo "invalid --types: $types (comma-separated task type names)" >&2
    exit 2
  fi
  type_re="(${types//,/|})"
fi
case "$1" in
  server)
    [ $# -eq 2 ] || [ $# -eq 3 ] || usage
    password=$(password_of "${@:3}")
    ensure_vhost
    ensure_user "$2" "$password"
    ctl set_permissions -p "$vhost" "$2" "^${p}\\." "^${p}\\." "^${p}\\."
    echo "server user $2: full rights on ${prefix}.* in vhost $vhost"
    ;;
  agent)
    [ $# -eq 2 ] || [ $# -eq 3 ] || usage
    if ! [[ "$2" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
      echo "invalid endpoint name: $2" >&2
      exit 2
    fi
    user="${agent_user_prefix}$2"
    e=$(esc "$2")
    own_queues="${p}\\.${type_re}\\.${e}"
    task_exchanges="${p}\\.(?!results\$|dead\$)${type_re}"
    password=$(password_of "${@:3}")
    ensure_vhost
    ensure_user "$user" "$password"
    control_queue="${p}\\.control\\.${e}"
    ctl set_permissions -p "$vhost" "$user" \
      "^(${own_queues}|${control_queue})\$" \
      "^(${p}\\.results|${p}\\.dead|${own_queues}|${control_queue})\$" \
      "^(${own_queues}|${task_exchanges}|${p}\\.control|${control_queue})\$"
    echo "agent user $user: own queues ${prefix}.<type>.$2, publishes to ${prefix}.results"
    ;;
  delete)
    [ $# -eq 2 ] || usage
    ctl delete_user "$2" || true
    ;;
  *) usage ;;
esac
