#!/usr/bin/env bash
# Check scripts/provision.sh on this machine without disturbing anything else on it:
#
#   sudo scripts/check-provision.sh        (1-2 minutes, half of it npm ci and the build)
#
# 1. runs provision.sh twice with a throwaway install dir, /etc dir, state dir and unit dir, its
#    own database, database user, vhost, broker users and endpoints (names carry a random
#    suffix), and asserts that the second run changes nothing;
#    (before that, that it refuses a Node older than 20.12 without changing anything; after it,
#    that a further run repairs things changed behind its back: a grant, a password, a file);
# 2. checks what it produced: file modes, no database credentials for agents, grants limited to
#    the one database, no secret in the output;
# 3. verifies the systemd units with systemd-analyze, if it is installed;
# 4. starts the server and both agents by hand from the install dir, as the service users and
#    with the generated env files (as the units would), posts the README's walk-through task and
#    waits for DONE;
# 5. runs provision.sh with TASKER_HARDEN=1 against a private RabbitMQ node it starts (the
#    shared broker's guest user must stay), and the walk-through again (CHECK_HARDEN=0 skips it);
# 6. removes all of it again (processes, database, users, vhost, files, and the system users
#    tasker/tasker-server if this run created them), also when a step fails.
# It never touches an existing /etc/tasker, /opt/tasker or another database or vhost, and leaves
# RabbitMQ's guest user alone (TASKER_HARDEN=0). Needs root, MariaDB and RabbitMQ answering
# (as for the tests), curl, and network access to the npm registry for npm ci.
# The last line is "check-provision: N passed, N failed"; the exit status is 0 only if all passed.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

say() { printf '[check] %s\n' "$*"; }
passed=0
failed=0
pass() {
  passed=$((passed + 1))
  say "PASS $*"
}
fail() {
  failed=$((failed + 1))
  say "FAIL $*"
}
expect() { # description command...: PASS if the command succeeds
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

[ "$(id -u)" -eq 0 ] || {
  say "run as root"
  exit 2
}
for tool in mysql rabbitmqctl curl node setpriv; do
  command -v "$tool" >/dev/null || {
    say "missing $tool"
    exit 2
  }
done

# --- throwaway names -----------------------------------------------------------------------------
suffix=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
base=$(mktemp -d /tmp/tasker-prov-XXXXXX)
chmod 755 "$base" # the service users must reach the install and state dirs below it
ep1=prov1-$suffix
ep2=prov2-$suffix
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
export TASKER_INSTALL_DIR=$base/opt
export TASKER_ETC_DIR=$base/etc
export TASKER_STATE_DIR=$base/state
export TASKER_UNIT_DIR=$base/units
export TASKER_DB_NAME=tasker_prov_$suffix
export TASKER_DB_USER=tprov_$suffix
export TASKER_VHOST=tasker_prov_$suffix
export TASKER_BROKER_SERVER_USER=tasker-server-prov-$suffix
export TASKER_ENDPOINTS="$ep1 $ep2"
TASKER_PORT=$(free_port)
export TASKER_PORT
export TASKER_HARDEN=0 # the test suites on this machine log in as guest
# The API token and broker passwords are generated; the database password is given, with every
# character that needs quoting in SQL, URLs, env files or the shell.
unset TASKER_API_TOKEN TASKER_SOURCE_DIR
export TASKER_DB_PASSWORD="P a'ss\"w\\o\$r%d/:@#&?;=x"
api=http://127.0.0.1:$TASKER_PORT
say "suffix $suffix, files under $base, API on port $TASKER_PORT"
# Provision from a snapshot of the checkout: others may be editing it, and a source change
# between the runs would (rightly) rebuild and spoil the "second run changes nothing" check.
rsync -a --exclude=/node_modules --exclude=/dist --exclude=/.git --exclude=/var ./ "$base/src/"

# What exists before, so that cleanup removes only what this run created.
created_users=()
for user in tasker tasker-server; do getent passwd "$user" >/dev/null || created_users+=("$user"); done
etc_tasker_before=$(ls -la /etc/tasker 2>&1 || true)
pids=()

cleanup() {
  local status=$?
  set +e
  say "cleaning up"
  # the private RabbitMQ node of part 5, if it is still there; then rabbitmqctl means the shared one
  if [ -s "$base/rabbitmq/pid" ]; then kill -KILL "$(cat "$base/rabbitmq/pid")" 2>/dev/null; fi
  unset RABBITMQ_NODENAME RABBITMQ_DIST_PORT RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE \
    RABBITMQ_CONFIG_FILE RABBITMQ_ENABLED_PLUGINS_FILE RABBITMQ_CONF_ENV_FILE RABBITMQ_PID_FILE
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  local drop="DROP DATABASE IF EXISTS \`$TASKER_DB_NAME\`; DROP DATABASE IF EXISTS \`${TASKER_DB_NAME}x\`;
    DROP USER IF EXISTS '$TASKER_DB_USER'@'localhost', '$TASKER_DB_USER'@'127.0.0.1';"
  mysql -uroot -e "$drop" || mysql -h127.0.0.1 -uroot -e "$drop"
  if rabbitmqctl -q list_vhosts --no-table-headers | grep -qxF "$TASKER_VHOST"; then
    rabbitmqctl -q delete_vhost "$TASKER_VHOST"
  fi
  for user in "$TASKER_BROKER_SERVER_USER" "tasker-agent-$ep1" "tasker-agent-$ep2"; do
    if rabbitmqctl -q list_users --no-table-headers | awk '{ print $1 }' | grep -qxF "$user"; then
      scripts/broker-users.sh delete "$user" >/dev/null
    fi
  done
  for user in "${created_users[@]}"; do userdel "$user" 2>/dev/null; done
  rm -rf "$base"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. provision twice --------------------------------------------------------------------------
# A snapshot of everything provision.sh manages; the second run must leave it identical.
snapshot() {
  (cd "$base" && find etc units state opt/.tasker-source-hash -printf '%p %m %u:%g\n' | sort)
  (cd "$base" && find etc units -type f -print0 | sort -z | xargs -0 sha256sum)
  for host in localhost 127.0.0.1; do mysql -uroot -N --raw -e "SHOW GRANTS FOR '$TASKER_DB_USER'@'$host'"; done
  rabbitmqctl -q list_permissions -p "$TASKER_VHOST" --no-table-headers | sort
  rabbitmqctl -q list_policies -p "$TASKER_VHOST" --no-table-headers | sort
}
run_provision() { # log file
  local started=$SECONDS rc=0
  bash "$base/src/scripts/provision.sh" >"$1" 2>&1 || rc=$?
  say "provision.sh exited $rc after $((SECONDS - started))s; its summary: $(tail -1 "$1")"
  return "$rc"
}

# --- 0. an old Node is refused before anything is changed ----------------------------------------
# Fakes on PATH: node 18 and an apt that offers only 18 (Debian 12's own package).
mkdir -p "$base/fake-bin"
printf '#!/bin/sh\necho 18.20.4\n' >"$base/fake-bin/node"
printf '#!/bin/sh\necho "nodejs:"; echo "  Candidate: 18.20.4+dfsg-1~deb12u3"\n' >"$base/fake-bin/apt-cache"
printf '#!/bin/sh\nexit 0\n' >"$base/fake-bin/apt-get"
chmod +x "$base/fake-bin"/*
rc=0
PATH=$base/fake-bin:$PATH bash "$base/src/scripts/provision.sh" >"$base/old-node.log" 2>&1 || rc=$?
expect "with Node 18 only, provision.sh fails" [ "$rc" -ne 0 ]
expect "... explaining how to get Node 20" grep -q 'tasker needs Node >= 20.12.*apt offers nodejs .18' "$base/old-node.log"
expect "... before changing anything" [ ! -e "$TASKER_ETC_DIR" ]
rm -rf "$base/fake-bin"

if ! run_provision "$base/run1.log"; then
  fail "first provision run"
  sed 's/^/    /' "$base/run1.log"
  exit 1
fi
pass "first provision run"
grep -E '^\[provision\] (changed|WARNING)' "$base/run1.log" | sed 's/^/    /'
before=$(snapshot)

if run_provision "$base/run2.log"; then pass "second provision run"; else fail "second provision run"; fi
if grep -q '^\[provision\] changed:' "$base/run2.log"; then
  fail "second run changed nothing"
  grep '^\[provision\] changed:' "$base/run2.log" | sed 's/^/    /'
else
  pass "second run changed nothing"
fi
expect "second run says 'provision: no changes'" grep -qx '\[provision\] provision: no changes' "$base/run2.log"
expect "second run left files, grants and permissions identical" [ "$before" = "$(snapshot)" ]
expect "second run explained that systemd is not running" grep -q 'systemd is not running' "$base/run2.log"

say "the second run's output:"
sed 's/^/    /' "$base/run2.log"

# Things changed behind its back are put right: an extra grant, a broker password, a lost env
# file, a loosened secrets file. Then a further run is a no-op again.
mysql -uroot -e "GRANT LOCK TABLES ON \`${TASKER_DB_NAME//_/\\_}\`.* TO '$TASKER_DB_USER'@'127.0.0.1'"
rabbitmqctl -q change_password "tasker-agent-$ep1" wrong-password
rm "$TASKER_ETC_DIR/agent-$ep2.env"
chmod 644 "$TASKER_ETC_DIR/secrets.env"
run_provision "$base/run3.log" || true
expect "a run after tampering reverts the extra grant" grep -q "changed: granted $TASKER_DB_USER@127.0.0.1 only" "$base/run3.log"
expect "... resets the agent's broker password" grep -q "changed: RabbitMQ agent user tasker-agent-$ep1 " "$base/run3.log"
expect "... rewrites the lost env file" grep -q "changed: wrote .*/agent-$ep2.env" "$base/run3.log"
expect "... makes secrets.env root-only again" grep -q "changed: made .*/secrets.env root-only" "$base/run3.log"
expect "... and changes nothing else" [ "$(grep -c '^\[provision\] changed:' "$base/run3.log")" -eq 4 ]
expect "... ending where the second run was" [ "$before" = "$(snapshot)" ]
run_provision "$base/run4.log" || true
expect "the run after that changes nothing" grep -qx '\[provision\] provision: no changes' "$base/run4.log"

# --- 2. what it produced -------------------------------------------------------------------------
etc=$TASKER_ETC_DIR
mode_of() { stat -c '%a %U:%G' "$1"; }
expect "secrets.env is 600 root" [ "$(mode_of "$etc/secrets.env")" = "600 root:root" ]
expect "tasker.env is 600 root" [ "$(mode_of "$etc/tasker.env")" = "600 root:root" ]
expect "tasker.env sets exactly the database url, broker url and API token" \
  [ "$(grep -v '^#' "$etc/tasker.env" | cut -d= -f1 | sort | paste -sd' ')" = "TASKER_API_TOKEN TASKER_BROKER_URL TASKER_DATABASE_URL" ]
for ep in "$ep1" "$ep2"; do
  file=$etc/agent-$ep.env
  expect "agent-$ep.env is 600 root" [ "$(mode_of "$file")" = "600 root:root" ]
  expect "agent-$ep.env holds only its own broker url" \
    [ "$(grep -v '^#' "$file" | sed 's#//[^:]*:[^@]*@#//USER:PASSWORD@#')" = \
    "TASKER_BROKER_URL=amqp://USER:PASSWORD@127.0.0.1:5672/$TASKER_VHOST" ]
  expect "agent-$ep.env logs in as tasker-agent-$ep" grep -q "^TASKER_BROKER_URL=amqp://tasker-agent-$ep:" "$file"
done
agent_files_mention_db() { grep -il 'mysql\|DATABASE\|TOKEN' "$etc"/agent-*.env; }
expect "no database credentials or token in any agent file" eval '! agent_files_mention_db'

secret_values=$(grep -v '^#' "$etc/secrets.env" | cut -d= -f2-)
leaked=0
while read -r value; do
  if grep -qF "$value" "$base/run1.log" "$base/run2.log"; then leaked=1; fi
done <<<"$secret_values"
expect "provision.sh printed no secret" [ "$leaked" -eq 0 ]

token=$(grep '^TASKER_API_TOKEN=' "$etc/tasker.env" | cut -d= -f2-)
db_password=$(grep '^TASKER_DB_PASSWORD=' "$etc/secrets.env" | cut -d= -f2-)
as_app() { MYSQL_PWD=$db_password mysql --no-defaults -h127.0.0.1 -u"$TASKER_DB_USER" -N --raw "$@" 2>/dev/null; }
app_sees_schema() { [ "$(as_app -e 'SHOW TABLES' "$TASKER_DB_NAME" | grep -c .)" -ge 3 ]; }
app_reads_mysql() { as_app -e 'SELECT 1 FROM mysql.user LIMIT 1' >/dev/null; }
app_creates_database() { as_app -e "CREATE DATABASE \`${TASKER_DB_NAME}x\`" >/dev/null; }
app_has_other_grants() { # any grant but USAGE (none) and the one on its own database
  as_app -e 'SHOW GRANTS' | grep -v '^GRANT USAGE ON \*\.\* TO ' | grep -vF " ON \`${TASKER_DB_NAME//_/\\_}\`.* TO "
}
expect "the app's database user sees the migrated schema" app_sees_schema
expect "the app's database user cannot read the mysql database" eval '! app_reads_mysql'
expect "the app's database user cannot create another database" eval '! app_creates_database'
expect "the app's database user has no other grants" eval '! app_has_other_grants'
expect "agent broker users have permissions in the vhost only" \
  [ "$(rabbitmqctl -q list_user_permissions "tasker-agent-$ep1" --no-table-headers | cut -f1)" = "$TASKER_VHOST" ]
expect "the real /etc/tasker was not touched" [ "$(ls -la /etc/tasker 2>&1 || true)" = "$etc_tasker_before" ]

# --- 3. the units --------------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
  # the units as shipped, and as installed with this run's paths
  expect "systemd-analyze verify deploy/*.service" systemd-analyze verify deploy/tasker-server.service 'deploy/tasker-agent@.service'
  mkdir -p "$base/verify"
  cp "$TASKER_UNIT_DIR/tasker-server.service" "$base/verify/"
  cp "$TASKER_UNIT_DIR/tasker-agent@.service" "$base/verify/tasker-agent@$ep1.service"
  expect "systemd-analyze verify of the installed units" \
    systemd-analyze verify "$base/verify/tasker-server.service" "$base/verify/tasker-agent@$ep1.service"
  for unit in deploy/tasker-server.service 'deploy/tasker-agent@.service'; do
    say "$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | tail -1 | sed 's/→ //')"
  done
else
  say "SKIP systemd-analyze is not installed (apt-get install systemd provides it)"
fi

# --- 4. run it by hand, as the units would -------------------------------------------------------
# env -i: the process sees only its env file (tasker warns of unknown TASKER_* variables, and the
# agent must not inherit anything else); setpriv: the unit's User=.
start() { # log env-file user workdir args...
  local log=$1 envfile=$2 user=$3 dir=$4 vars
  shift 4
  mapfile -t vars < <(grep -v '^#' "$envfile")
  (cd "$dir" && exec env -i PATH=/usr/bin:/bin WORKER_SECONDS=1 "${vars[@]}" \
    setpriv --reuid="$user" --regid="$user" --init-groups -- \
    "$(command -v node)" "$TASKER_INSTALL_DIR/dist/src/cli/main.js" "$@") >"$log" 2>&1 &
  pids+=($!)
}
wait_for() { # seconds command...
  local seconds=$1
  shift
  for _ in $(seq $((seconds * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  return 1
}
consuming() { # the agent's worker queue has a consumer
  rabbitmqctl -q list_consumers -p "$TASKER_VHOST" --no-table-headers | grep -q "^tasker\.worker\.$1[[:space:]]"
}
stopped() { ! kill -0 "$1" 2>/dev/null; }
# A line per response: the task's status, then "endpoint status attempt errnr" per endpoint.
task_state() { # identifier
  curl -sf -H "Authorization: Bearer $token" "$api/worker/$1" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const r = JSON.parse(s);
      console.log(r.task.status);
      for (const e of r.taskResponseList) console.log(e.endpoint, e.status, e.attempt, e.errnr);
    });'
}
final() { task_state "$1" | head -1 | grep -qxE 'DONE|FAILED|INCOMPLETE'; }

# walkthrough LABEL: server and both agents up, the README's walk-through, SIGTERM to all.
walkthrough() {
  local label=$1 log_dir=$base/logs-$1 server_pid agent_pids ep identifier body code state pid rc
  mkdir -p "$log_dir"
  pids=()
  start "$log_dir/server.log" "$etc/tasker.env" tasker-server "$TASKER_INSTALL_DIR" \
    server --mode production --config "$etc/production.yaml"
  server_pid=${pids[-1]}
  if wait_for 60 curl -sf "$api/readyz"; then pass "$label: server ready (/readyz 200)"; else fail "$label: server ready (/readyz 200)"; fi
  # Agents after the server: it declares the exchanges, and an agent that finds none exits
  # (under systemd it is restarted until the server is there).
  for ep in "$ep1" "$ep2"; do
    start "$log_dir/agent-$ep.log" "$etc/agent-$ep.env" tasker "$TASKER_STATE_DIR" \
      agent --mode agent --config "$etc/agent.yaml" --endpoint "$ep"
  done
  agent_pids=("${pids[@]:1}")
  for ep in "$ep1" "$ep2"; do
    expect "$label: agent $ep consumes its queue" wait_for 60 consuming "$ep"
  done

  expect "$label: POST without a token is refused (401)" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -d '{}' "$api/worker")" = 401 ]
  # The README's walk-through (testdata.json), addressed to this run's endpoints.
  identifier=e7bd91d0-16ad-11e2-892e-0800200c9a66-$suffix-$label
  body=$(node -e 'const t=JSON.parse(require("fs").readFileSync("testdata.json","utf8"));
    t.identifier=process.argv[1]; t.endpoints=process.argv.slice(2); console.log(JSON.stringify(t))' \
    "$identifier" "$ep1" "$ep2")
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
    -H "Authorization: Bearer $token" -d "$body" "$api/worker" || true)
  expect "$label: POST /worker with the token answers 201" [ "$code" = 201 ]
  wait_for 60 final "$identifier" || true
  state=$(task_state "$identifier" || true)
  say "$label: task $identifier: $(printf '%s' "$state" | paste -sd' ')"
  expect "$label: the task is DONE" [ "$(head -1 <<<"$state")" = DONE ]
  for ep in "$ep1" "$ep2"; do
    expect "$label: endpoint $ep DONE with errnr 0" grep -qx "$ep DONE [0-9]* 0" <<<"$state"
  done

  # SIGTERM, as systemd stops them: agents drain, the server finishes and exits.
  for pid in "${agent_pids[@]}" "$server_pid"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${agent_pids[@]}" "$server_pid"; do
    if wait_for 45 stopped "$pid"; then
      rc=0
      wait "$pid" || rc=$?
      expect "$label: process $pid exited 0 on SIGTERM" [ "$rc" -eq 0 ]
    else
      fail "$label: process $pid stopped within 45 s of SIGTERM"
    fi
  done
  pids=()
  if [ "$failed" -gt 0 ]; then
    for log in "$log_dir"/*.log; do
      say "last lines of $log:"
      tail -5 "$log" | sed 's/^/    /'
    done
  fi
}
walkthrough main
# the server declared tasker.dead in the vhost; provision's policy must bound it
expect "tasker.dead has the dead-letter policy (max-length 100000, 7 days)" \
  grep -qxP 'tasker\.dead\ttasker-dead-letters' <<<"$(rabbitmqctl -q list_queues -p "$TASKER_VHOST" name policy --no-table-headers)"
expect "... whose definition is the length and age bound" \
  grep -qF '{"max-length":100000,"message-ttl":604800000}' <<<"$(rabbitmqctl -q list_policies -p "$TASKER_VHOST" --no-table-headers)"

# --- 5. TASKER_HARDEN=1, on a private RabbitMQ node -----------------------------------------------
# Hardening deletes the guest user, which the shared broker here must keep. So this runs against a
# RabbitMQ node of its own (own name, ports, data and config under $base; rabbitmqctl follows
# RABBITMQ_NODENAME): provision.sh moves the broker users there, deletes that node's guest and
# sets its consumer_timeout, and the walk-through runs again through it. CHECK_HARDEN=0 skips it.
if [ "${CHECK_HARDEN:-1}" = 1 ]; then
  rmq=$base/rabbitmq
  mkdir -p "$rmq/mnesia" "$rmq/log"
  rmq_port=$(free_port)
  printf 'listeners.tcp.local = 127.0.0.1:%s\n' "$rmq_port" >"$rmq/rabbitmq.conf"
  echo '[].' >"$rmq/enabled_plugins"
  : >"$rmq/rabbitmq-env.conf"
  chown -R rabbitmq:rabbitmq "$rmq"
  export RABBITMQ_NODENAME=tprov-$suffix@localhost RABBITMQ_DIST_PORT
  RABBITMQ_DIST_PORT=$(free_port)
  export RABBITMQ_MNESIA_BASE=$rmq/mnesia RABBITMQ_LOG_BASE=$rmq/log \
    RABBITMQ_CONFIG_FILE=$rmq/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$rmq/enabled_plugins \
    RABBITMQ_CONF_ENV_FILE=$rmq/rabbitmq-env.conf RABBITMQ_PID_FILE=$rmq/pid
  rabbitmq-server -detached >/dev/null 2>&1 || true
  if wait_for 120 rabbitmq-diagnostics -q check_port_connectivity && [ -s "$rmq/pid" ]; then
    rabbit_pid=$(cat "$rmq/pid")
    say "private RabbitMQ node $RABBITMQ_NODENAME on port $rmq_port (pid $rabbit_pid)"
    export TASKER_HARDEN=1 TASKER_BROKER_PORT=$rmq_port TASKER_RABBITMQ_CONF=$rmq/rabbitmq.conf
    run_provision "$base/run5.log" || true
    sed 's/^/    /' "$base/run5.log" | grep -E 'changed|WARNING|ERROR'
    expect "harden: deleted the node's guest user" grep -q "changed: deleted RabbitMQ's guest user" "$base/run5.log"
    expect "harden: guest is gone from the private node" eval '! rabbitmqctl -q list_users --no-table-headers | grep -q "^guest[[:space:]]"'
    expect "harden: consumer_timeout written to its rabbitmq.conf" grep -qx 'consumer_timeout = 3600000' "$rmq/rabbitmq.conf"
    expect "harden: the running node has consumer_timeout 3600000" \
      grep -q 3600000 <<<"$(rabbitmqctl -q eval 'application:get_env(rabbit, consumer_timeout).')"
    run_provision "$base/run6.log" || true
    expect "harden: the run after that changes nothing" grep -qx '\[provision\] provision: no changes' "$base/run6.log"
    walkthrough harden
    kill -TERM "$rabbit_pid" 2>/dev/null || true
    wait_for 60 stopped "$rabbit_pid" || kill -KILL "$rabbit_pid" 2>/dev/null || true
  else
    fail "harden: a private RabbitMQ node did not start (CHECK_HARDEN=0 skips this part)"
    [ ! -s "$rmq/pid" ] || kill -KILL "$(cat "$rmq/pid")" 2>/dev/null || true
  fi
  unset RABBITMQ_NODENAME RABBITMQ_DIST_PORT RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE \
    RABBITMQ_CONFIG_FILE RABBITMQ_ENABLED_PLUGINS_FILE RABBITMQ_CONF_ENV_FILE RABBITMQ_PID_FILE
fi
# rabbitmqctl can fail for a moment right after the private node stopped (its CLI connection
# is cut while the Erlang distribution settles), so ask the shared node a few times.
shared_guest() {
  local output
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if output=$(rabbitmqctl -q list_users --no-table-headers 2>&1); then
      grep -q "^guest[[:space:]]" <<<"$output"
      return
    fi
    sleep 2
  done
  return 1
}
expect "the shared broker still has its guest user" shared_guest

printf 'check-provision: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
