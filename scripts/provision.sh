#!/usr/bin/env bash
# Provision a tasker host: MariaDB, RabbitMQ, Node 20, the tasker build, least-privilege database
# and broker users, configuration, schema, and the systemd units for the server and its agents.
# For Debian 12+/Ubuntu, run as root from a checkout of this repository:
#
#   sudo scripts/provision.sh
#
# Idempotent: each step prints "ok:" when it found things as they should be and "changed:" when
# it had to act; a second run changes nothing and ends with "provision: no changes". Secrets are
# generated once and kept in /etc/tasker/secrets.env (mode 600), so a re-run reuses them.
#
# Environment (all optional):
#   TASKER_ENDPOINTS     agents to set up on this host (default "console1 console2")
#   TASKER_DB_PASSWORD   password of the database user (default: generated once)
#   TASKER_API_TOKEN     API bearer token (default: generated once)
#   MYSQL_PASSWD         password of MariaDB's root account, if it has one (default: none, as on
#                        Debian, where root logs in through the unix socket)
#   TASKER_HARDEN=1      also delete RabbitMQ's guest user and set its consumer_timeout. Off by
#                        default: on a shared or developer machine other things use guest.
#   TASKER_PORT          API port (default 8888)
#   TASKER_INSTALL_DIR   build and install tasker here (default /opt/tasker)
#   TASKER_ETC_DIR       configuration, env files and secrets (default /etc/tasker)
#   TASKER_STATE_DIR     the agents' state directory (default /var/lib/tasker)
#   TASKER_UNIT_DIR      where the systemd units go (default /etc/systemd/system)
#   TASKER_DB_NAME, TASKER_DB_USER         database and its user (default tasker, tasker)
#   TASKER_DB_HOST, TASKER_DB_PORT         MariaDB address in the URLs (default 127.0.0.1:3306)
#   TASKER_VHOST                           RabbitMQ vhost (default tasker)
#   TASKER_BROKER_HOST, TASKER_BROKER_PORT RabbitMQ address in the URLs (default 127.0.0.1:5672)
#   TASKER_BROKER_SERVER_USER              the server's broker user (default tasker-server)
#   TASKER_CONSUMER_TIMEOUT_MS             consumer_timeout written under TASKER_HARDEN=1
#                                          (default 3600000, one hour)
#   TASKER_RABBITMQ_CONF                   RabbitMQ's config file (default
#                                          /etc/rabbitmq/rabbitmq.conf)
#   TASKER_DEAD_LETTER_MAX_LENGTH          messages kept in the dead-letter queue tasker.dead, the
#                                          oldest dropped first (default 100000)
#   TASKER_DEAD_LETTER_TTL_MS              and for how long (default 604800000, 7 days)
# rabbitmqctl honours RABBITMQ_NODENAME etc. as usual, to work on another node.
# The overrides exist so that scripts/check-provision.sh can run this on a shared machine without
# touching a real installation.
set -euo pipefail
umask 022 # the install dir and configs must be readable by the service users
export LC_ALL=C

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=${TASKER_SOURCE_DIR:-$(cd "$script_dir/.." && pwd)}
INSTALL_DIR=${TASKER_INSTALL_DIR:-/opt/tasker}
ETC_DIR=${TASKER_ETC_DIR:-/etc/tasker}
STATE_DIR=${TASKER_STATE_DIR:-/var/lib/tasker}
UNIT_DIR=${TASKER_UNIT_DIR:-/etc/systemd/system}
DB_NAME=${TASKER_DB_NAME:-tasker}
DB_USER=${TASKER_DB_USER:-tasker}
DB_HOST=${TASKER_DB_HOST:-127.0.0.1}
DB_PORT=${TASKER_DB_PORT:-3306}
VHOST=${TASKER_VHOST:-tasker}
BROKER_HOST=${TASKER_BROKER_HOST:-127.0.0.1}
BROKER_PORT=${TASKER_BROKER_PORT:-5672}
BROKER_SERVER_USER=${TASKER_BROKER_SERVER_USER:-tasker-server}
AGENT_BROKER_USER_PREFIX=tasker-agent- # as server.agent_user_prefix and broker-users.sh
read -r -a ENDPOINTS <<<"${TASKER_ENDPOINTS:-console1 console2}"
PORT=${TASKER_PORT:-8888}
HARDEN=${TASKER_HARDEN:-0}
CONSUMER_TIMEOUT_MS=${TASKER_CONSUMER_TIMEOUT_MS:-3600000}
DEAD_LETTER_MAX_LENGTH=${TASKER_DEAD_LETTER_MAX_LENGTH:-100000}
DEAD_LETTER_TTL_MS=${TASKER_DEAD_LETTER_TTL_MS:-604800000}
RABBITMQ_CONF=${TASKER_RABBITMQ_CONF:-/etc/rabbitmq/rabbitmq.conf}
# System users the units run as: separate ones, so that an agent's handlers cannot read the
# server's environment (same uid could read /proc/<pid>/environ, which holds the DB password).
SERVER_USER=tasker-server
AGENT_USER=tasker
# Privileges the application's database user gets on its database and nothing else: what the
# server's queries and the migrations (CREATE/ALTER/INDEX/DROP/REFERENCES) need.
DB_PRIVILEGES='SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES'
SECRETS=$ETC_DIR/secrets.env
# the package.json "engines" requirement (>=20.12)
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=12

changes=0
say() { printf '[provision] %s\n' "$*"; }
ok() { say "ok: $*"; }
changed() {
  changes=$((changes + 1))
  say "changed: $*"
}
warn() { say "WARNING: $*" >&2; }
die() {
  say "ERROR: $*" >&2
  exit 1
}

# --- checks on the input: values end up in SQL, URLs, sed expressions and unit files ----------
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and creates users)"
for dir in "$INSTALL_DIR" "$ETC_DIR" "$STATE_DIR" "$UNIT_DIR" "$RABBITMQ_CONF"; do
  [[ $dir =~ ^/[A-Za-z0-9._/-]+$ ]] || die "not a plain absolute path: $dir"
done
[[ $DB_NAME =~ ^[A-Za-z0-9_]{1,64}$ ]] || die "TASKER_DB_NAME: letters, digits, _ only"
[[ $DB_USER =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "TASKER_DB_USER: letters, digits, _ only"
[[ $VHOST =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || die "TASKER_VHOST: letters, digits, . _ - only"
[[ $BROKER_SERVER_USER =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || die "bad TASKER_BROKER_SERVER_USER"
for port in "$PORT" "$DB_PORT" "$BROKER_PORT"; do
  if ! [[ $port =~ ^[0-9]{1,5}$ ]] || [ "$port" -gt 65535 ]; then die "not a port number: $port"; fi
done
for host in "$DB_HOST" "$BROKER_HOST"; do
  [[ $host =~ ^[A-Za-z0-9.:-]+$ ]] || die "not a host name or address: $host"
done
[[ $CONSUMER_TIMEOUT_MS =~ ^[0-9]+$ ]] || die "TASKER_CONSUMER_TIMEOUT_MS: milliseconds"
[[ $DEAD_LETTER_MAX_LENGTH =~ ^[1-9][0-9]*$ ]] || die "TASKER_DEAD_LETTER_MAX_LENGTH: a message count"
[[ $DEAD_LETTER_TTL_MS =~ ^[1-9][0-9]*$ ]] || die "TASKER_DEAD_LETTER_TTL_MS: milliseconds"
[ "${#ENDPOINTS[@]}" -gt 0 ] || die "TASKER_ENDPOINTS is empty"
for endpoint in "${ENDPOINTS[@]}"; do
  # as broker-users.sh and tasker itself accept them
  [[ $endpoint =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die "invalid endpoint name: $endpoint"
done
if ! [ -f "$SOURCE_DIR/package.json" ] || ! [ -f "$SOURCE_DIR/deploy/production.yaml" ]; then
  die "$SOURCE_DIR is not a tasker checkout (set TASKER_SOURCE_DIR)"
fi

systemd_running() { [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; }

# --- 1. packages ---------------------------------------------------------------------------------
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  changed "installed $*"
}

need=()
[ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || command -v mysql >/dev/null 2>&1 || need+=(mariadb-client)
command -v rabbitmqctl >/dev/null 2>&1 || need+=(rabbitmq-server)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; else ok "MariaDB, RabbitMQ, rsync installed"; fi

# Node: Debian's own package when it is new enough (Debian 13 has Node 20); otherwise stop with
# instructions rather than pull in a third-party repository behind the operator's back.
node_version() { node -p 'process.versions.node' 2>/dev/null || true; }
node_ok() { # VERSION
  local major minor
  IFS=. read -r major minor _ <<<"$1"
  [[ $major =~ ^[0-9]+$ ]] || return 1
  [ "$major" -gt "$NODE_MIN_MAJOR" ] || { [ "$major" -eq "$NODE_MIN_MAJOR" ] && [ "${minor:-0}" -ge "$NODE_MIN_MINOR" ]; }
}
if node_ok "$(node_version)"; then
  ok "node $(node_version)"
else
  [ "$apt_updated" -eq 1 ] || { apt-get update -qq && apt_updated=1; }
  candidate=$(apt-cache policy nodejs | awk '/Candidate:/ { print $2 }')
  candidate=${candidate#*:} # drop an epoch
  if node_ok "$candidate"; then
    apt_install nodejs
    node_ok "$(node_version)" || die "installed nodejs $candidate, but node says '$(node_version)'"
  else
    die "tasker needs Node >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR; node here is '$(node_version)' and \
apt offers nodejs '${candidate:-none}'. Install Node 20 first, then run this again. Either:
  - use Debian 13 (trixie), whose nodejs package is Node 20; or
  - unpack the official Linux binary from https://nodejs.org/dist/latest-v20.x/ (check it against
    SHASUMS256.txt there) into /usr/local, so that /usr/local/bin/node is Node 20; or
  - add NodeSource's apt repository for Node 20 (https://github.com/nodesource/distributions)
    and apt-get install nodejs.
The systemd units are written with whatever 'node' is first on PATH."
  fi
fi
# Debian splits npm into its own package; NodeSource's and the official builds include it.
command -v npm >/dev/null 2>&1 || apt_install npm
NODE_BIN=$(command -v node)

# --- 2. MariaDB and RabbitMQ answering -----------------------------------------------------------
wait_until() { # seconds what command...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq "$seconds"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$what did not come up within ${seconds}s"
}

# The client programs are called mariadb and mariadb-admin now; mysql and mysqladmin are the old
# names, which newer Debian releases ship only in a compatibility package.
sql() { if command -v mariadb >/dev/null 2>&1; then mariadb "$@"; else mysql "$@"; fi; }
sql_ping() { if command -v mariadb-admin >/dev/null 2>&1; then mariadb-admin "$@" ping; else mysqladmin "$@" ping; fi; }

# Administrative access to MariaDB: root through the unix socket (Debian's default), else root
# over TCP; MYSQL_PASSWD is root's password where it has one.
db_admin_args=()
db_admin() { # reads SQL on stdin; --raw: no escaping of "\" in results
  if [ -n "${MYSQL_PASSWD:-}" ]; then
    MYSQL_PWD=$MYSQL_PASSWD sql "${db_admin_args[@]}" -uroot --batch --raw --skip-column-names
  else
    sql "${db_admin_args[@]}" -uroot --batch --raw --skip-column-names
  fi
}
db_admin_works() {
  local choice
  for choice in "--protocol=socket" "-h127.0.0.1 -P$DB_PORT"; do
    read -r -a db_admin_args <<<"$choice"
    if echo 'SELECT 1' | db_admin >/dev/null 2>&1; then return 0; fi
  done
  return 1
}
# ping succeeds when the server answers, even if it refuses the login
mariadb_answers() {
  sql_ping --no-defaults -h127.0.0.1 -P"$DB_PORT" --connect-timeout=2 >/dev/null 2>&1 ||
    sql_ping --no-defaults --protocol=socket --connect-timeout=2 >/dev/null 2>&1
}

if mariadb_answers || db_admin_works; then
  ok "MariaDB answers"
else
  if systemd_running; then
    systemctl start mariadb
  else
    # no init system to ask (a container): start it the way the Debian package would
    install -d -o mysql -g mysql /run/mysqld
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  fi
  wait_until 60 MariaDB mariadb_answers
  changed "started MariaDB"
fi
db_admin_works || die "cannot log in to MariaDB as root (set MYSQL_PASSWD if root has a password)"

rabbit() { rabbitmqctl -q "$@"; }
rabbit_answers() { rabbitmq-diagnostics -q check_port_connectivity; }
if rabbit_answers >/dev/null 2>&1; then
  ok "RabbitMQ answers"
else
  if systemd_running; then systemctl start rabbitmq-server; else rabbitmq-server -detached || true; fi
  wait_until 120 RabbitMQ rabbit_answers
  changed "started RabbitMQ"
fi

# --- 3. secrets ----------------------------------------------------------------------------------
# secrets.env holds KEY=VALUE lines, the value running to the end of the line. Only this script
# reads it (it is never sourced), so keys may contain an endpoint's "." and "-".
install -d -m 0755 -o root -g root "$ETC_DIR"
if [ ! -f "$SECRETS" ]; then
  (
    umask 077
    printf '# tasker secrets, kept by scripts/provision.sh and reused on every run. Root only.\n' >"$SECRETS"
  )
  changed "created $SECRETS"
fi
if [ "$(stat -c '%a %U' "$SECRETS")" != "600 root" ]; then
  chown root:root "$SECRETS" && chmod 600 "$SECRETS"
  changed "made $SECRETS root-only"
fi
secret_get() { awk -v key="$1" 'index($0, key "=") == 1 { print substr($0, length(key) + 2); exit }' "$SECRETS"; }
secret_put() { # key value: replace the line atomically; the temp file is created 0600
  local tmp
  tmp=$(mktemp "$SECRETS.XXXXXX")
  awk -v key="$1" 'index($0, key "=") != 1' "$SECRETS" >"$tmp"
  printf '%s=%s\n' "$1" "$2" >>"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$SECRETS"
}
random_secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; } # 48 hex digits: URL-safe
# secret VARIABLE KEY [VALUE-FROM-ENV]: set VARIABLE to the env value if given (stored when it
# differs), else to the stored one, else to a new random one. (Not $(...): changes must count.)
secret() {
  local var=$1 key=$2 given=${3:-} stored
  stored=$(secret_get "$key")
  [[ $given != *$'\n'* ]] || die "$key must be one line"
  if [ -n "$given" ] && [ "$given" != "$stored" ]; then
    secret_put "$key" "$given"
    changed "stored $key from the environment"
    stored=$given
  elif [ -z "$stored" ]; then
    stored=$(random_secret)
    secret_put "$key" "$stored"
    changed "generated $key"
  fi
  printf -v "$var" '%s' "$stored"
}
changes_before=$changes
secret DB_PASSWORD TASKER_DB_PASSWORD "${TASKER_DB_PASSWORD:-}"
secret API_TOKEN TASKER_API_TOKEN "${TASKER_API_TOKEN:-}"
secret BROKER_SERVER_PASSWORD TASKER_BROKER_SERVER_PASSWORD
declare -A AGENT_PASSWORD
for endpoint in "${ENDPOINTS[@]}"; do
  secret password "TASKER_AGENT_PASSWORD_$endpoint"
  AGENT_PASSWORD[$endpoint]=$password
done
[ "$changes" -ne "$changes_before" ] || ok "secrets reused from $SECRETS"

# percent-encode for the userinfo of a URL (a password given through the environment may hold
# anything); the env files then hold no characters systemd or a shell would treat specially
urlencode() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c" && out+=$c ;;
    esac
  done
  printf '%s' "$out"
}
sql_string() { # a single-quoted SQL literal
  local s=${1//\\/\\\\}
  s=${s//\'/\\\'}
  printf "'%s'" "$s"
}

# --- 4. database and its least-privilege user ----------------------------------------------------
# (not SHOW DATABASES LIKE: "_" would be a wildcard there)
if [ -n "$(echo "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '$DB_NAME'" | db_admin)" ]; then
  ok "database $DB_NAME exists"
else
  echo "CREATE DATABASE \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" | db_admin
  changed "created database $DB_NAME (utf8mb4)"
fi
# In GRANT ... ON db.*, "_" is a wildcard; escape it so the grant covers this database only.
db_pattern=${DB_NAME//_/\\_}
want_privileges=$(tr ',' '\n' <<<"$DB_PRIVILEGES" | tr -d ' ' | sort | paste -sd, -)
socket=$(echo 'SELECT @@socket' | db_admin)
for host in localhost 127.0.0.1; do
  account="$(sql_string "$DB_USER")@$(sql_string "$host")"
  if [ -z "$(echo "SELECT 1 FROM mysql.user WHERE User=$(sql_string "$DB_USER") AND Host=$(sql_string "$host")" | db_admin)" ]; then
    echo "CREATE USER $account IDENTIFIED BY $(sql_string "$DB_PASSWORD")" | db_admin
    changed "created database user $DB_USER@$host"
  else
    # --no-defaults: root's option files must not lend their credentials to this test
    if [ "$host" = localhost ]; then
      where=(--protocol=socket "--socket=$socket")
    else
      where=(-h127.0.0.1 "-P$DB_PORT")
    fi
    if MYSQL_PWD=$DB_PASSWORD sql --no-defaults "${where[@]}" -u"$DB_USER" -e 'SELECT 1' >/dev/null 2>&1; then
      ok "database user $DB_USER@$host logs in with the stored password"
    else
      echo "ALTER USER $account IDENTIFIED BY $(sql_string "$DB_PASSWORD")" | db_admin
      changed "set the password of $DB_USER@$host"
    fi
  fi
  # Exactly the wanted privileges on this database, nothing anywhere else (USAGE is "none").
  grants=$(echo "SHOW GRANTS FOR $account" | db_admin | grep -v '^GRANT USAGE ON \*\.\* TO ' || true)
  have_privileges=''
  if [ "$(printf '%s\n' "$grants" | grep -c .)" -eq 1 ] &&
    grep -qF " ON \`$db_pattern\`.* TO " <<<"$grants" && ! grep -q 'WITH GRANT OPTION' <<<"$grants"; then
    have_privileges=${grants#GRANT }
    have_privileges=$(tr ',' '\n' <<<"${have_privileges%% ON \`*}" | tr -d ' ' | sort | paste -sd, -)
  fi
  if [ "$have_privileges" = "$want_privileges" ]; then
    ok "$DB_USER@$host has only $DB_PRIVILEGES on $DB_NAME"
  else
    db_admin <<SQL
REVOKE ALL PRIVILEGES, GRANT OPTION FROM $account;
GRANT $DB_PRIVILEGES ON \`$db_pattern\`.* TO $account;
SQL
    changed "granted $DB_USER@$host only $DB_PRIVILEGES on $DB_NAME"
  fi
done

# --- 5. RabbitMQ vhost and users (scripts/broker-users.sh) ---------------------------------------
if rabbit list_vhosts --no-table-headers | grep -qxF "$VHOST"; then
  ok "RabbitMQ vhost $VHOST exists"
else
  rabbit add_vhost "$VHOST"
  changed "created RabbitMQ vhost $VHOST"
fi
# A user is left alone when it logs in with the stored password and has permissions in the vhost;
# otherwise broker-users.sh (re)creates it with its least-privilege permissions. (broker-users.sh
# always resets the password, so calling it every time would not be a no-op.)
broker_users=$(rabbit list_users --no-table-headers | awk '{ print $1 }')
broker_user() { # kind name user password
  local kind=$1 name=$2 user=$3 password=$4
  if grep -qxF "$user" <<<"$broker_users" &&
    printf '%s' "$password" | rabbit authenticate_user "$user" >/dev/null 2>&1 &&
    rabbit list_user_permissions "$user" --no-table-headers | awk -F'\t' '{ print $1 }' | grep -qxF "$VHOST"; then
    ok "RabbitMQ user $user"
  else
    printf '%s\n' "$password" |
      "$SOURCE_DIR/scripts/broker-users.sh" --vhost "$VHOST" --agent-user-prefix "$AGENT_BROKER_USER_PREFIX" \
        "$kind" "$name" >/dev/null
    changed "RabbitMQ $kind user $user (vhost $VHOST)"
  fi
}
broker_user server "$BROKER_SERVER_USER" "$BROKER_SERVER_USER" "$BROKER_SERVER_PASSWORD"
for endpoint in "${ENDPOINTS[@]}"; do
  broker_user agent "$endpoint" "$AGENT_BROKER_USER_PREFIX$endpoint" "${AGENT_PASSWORD[$endpoint]}"
done

# The dead-letter queue receives every poison message and every task that expired in the queue
# of an endpoint that stayed offline; nothing else empties it. A policy bounds it by length and
# age (a policy, unlike queue arguments, changes without redeclaring the queue).
dead_policy='{"max-length":'$DEAD_LETTER_MAX_LENGTH',"message-ttl":'$DEAD_LETTER_TTL_MS'}'
dead_policy_line=$(printf '%s\t%s\t%s\t%s\t%s\t%s' "$VHOST" tasker-dead-letters '^tasker\.dead$' queues "$dead_policy" 0)
if rabbit list_policies -p "$VHOST" --no-table-headers | grep -qxF "$dead_policy_line"; then
  ok "RabbitMQ policy tasker-dead-letters bounds tasker.dead"
else
  rabbit set_policy -p "$VHOST" tasker-dead-letters '^tasker\.dead$' "$dead_policy" --apply-to queues --priority 0 >/dev/null
  changed "RabbitMQ policy tasker-dead-letters: tasker.dead keeps $DEAD_LETTER_MAX_LENGTH messages for $DEAD_LETTER_TTL_MS ms at most"
fi

if [ "$HARDEN" = 1 ]; then
  # guest/guest is a well-known login; with the tasker users in place nothing needs it.
  if grep -qxF guest <<<"$broker_users"; then
    rabbit delete_user guest
    changed "deleted RabbitMQ's guest user"
  else
    ok "RabbitMQ has no guest user"
  fi
  # RabbitMQ closes a channel whose consumer holds a message longer than consumer_timeout
  # (30 min by default), and agents hold a task until its handler finished. Raise it once, but
  # never override an operator's own setting. The running broker gets it through eval, so no
  # restart is needed (new channels use it).
  conf=$RABBITMQ_CONF
  if [ -f "$conf" ] && grep -Eq '^[[:space:]]*consumer_timeout[[:space:]]*=' "$conf"; then
    ok "consumer_timeout already set in $conf (left as is)"
  else
    install -d "$(dirname "$conf")"
    # a file not ending in a newline would glue the new line to its last one
    if [ -s "$conf" ] && [ -n "$(tail -c1 "$conf")" ]; then echo >>"$conf"; fi
    printf '# set by tasker scripts/provision.sh: above every task type'"'"'s execution_timeout\nconsumer_timeout = %s\n' \
      "$CONSUMER_TIMEOUT_MS" >>"$conf"
    rabbit eval "application:set_env(rabbit, consumer_timeout, $CONSUMER_TIMEOUT_MS)." >/dev/null
    changed "consumer_timeout = $CONSUMER_TIMEOUT_MS in $conf (and in the running broker)"
  fi
fi

# --- 6. system users and the agents' state directory --------------------------------------------
for user in "$SERVER_USER" "$AGENT_USER"; do
  if getent passwd "$user" >/dev/null; then
    ok "system user $user"
  else
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "tasker service" "$user"
    changed "created system user $user"
  fi
done
if [ "$(stat -c '%U:%G %a' "$STATE_DIR" 2>/dev/null)" = "$AGENT_USER:$AGENT_USER 750" ]; then
  ok "state directory $STATE_DIR"
else
  install -d -m 0750 -o "$AGENT_USER" -g "$AGENT_USER" "$STATE_DIR"
  changed "state directory $STATE_DIR"
fi

# --- 7. the build --------------------------------------------------------------------------------
# What is copied: the checkout without what is built, installed or generated locally, and without
# the tests and benchmarks (tsconfig includes them, but a deployment does not need them).
excluded=(node_modules dist .git .vagrant var coverage test bench)
source_hash() {
  local prune=() name
  for name in "${excluded[@]}"; do prune+=(-path "./$name" -prune -o); done
  {
    (cd "$SOURCE_DIR" && find . "${prune[@]}" -type f -print0 | sort -z | xargs -0 sha256sum)
    node --version # a new Node rebuilds too
  } | sha256sum | cut -d' ' -f1
}
hash_file=$INSTALL_DIR/.tasker-source-hash
want_hash=$(source_hash)
restart=0 # something the running services read changed
if [ -f "$INSTALL_DIR/dist/src/cli/main.js" ] && [ "$(cat "$hash_file" 2>/dev/null)" = "$want_hash" ]; then
  ok "build in $INSTALL_DIR is up to date"
else
  say "building tasker in $INSTALL_DIR (npm ci, npm run build)"
  install -d -m 0755 "$INSTALL_DIR"
  rsync_args=(-a --delete --no-owner --no-group "--chmod=u+rwX,go=rX")
  for name in "${excluded[@]}"; do rsync_args+=("--exclude=/$name"); done
  rsync "${rsync_args[@]}" "$SOURCE_DIR/" "$INSTALL_DIR/"
  rm -f "$hash_file" # written last: an interrupted build is redone next time
  build_log=$INSTALL_DIR/.build.log
  npm_flags=(--no-audit --no-fund --loglevel=error)
  cd "$INSTALL_DIR"
  rm -rf dist
  # npm ci installs exactly the lockfile. Newer npm releases refuse a lockfile that lacks entries
  # for other platforms' optional packages; then npm install (which keeps the locked versions and
  # only adds the missing entries, in this copy) is the fallback, with a warning to fix the lock.
  if ! npm ci "${npm_flags[@]}" >"$build_log" 2>&1; then
    grep -q 'EUSAGE' "$build_log" || die "npm ci failed; see $build_log"
    warn "npm $(npm --version) says package-lock.json is out of sync with package.json" \
      "(run npm install in the repository and commit the lockfile); using npm install"
    npm install "${npm_flags[@]}" >>"$build_log" 2>&1 || die "npm install failed; see $build_log"
  fi
  npm run build --silent >>"$build_log" 2>&1 || die "npm run build failed; see $build_log"
  # the runtime needs the dependencies only, not the compiler and test tools
  npm prune --omit=dev "${npm_flags[@]}" >>"$build_log" 2>&1 || die "npm prune failed; see $build_log"
  [ -f dist/src/cli/main.js ] || die "the build produced no dist/src/cli/main.js; see $build_log"
  cd - >/dev/null
  printf '%s\n' "$want_hash" >"$hash_file"
  restart=1
  changed "built tasker into $INSTALL_DIR"
fi

# --- 8. configuration and env files --------------------------------------------------------------
# install_file DEST MODE [OWNER]: content on stdin; replaced only when it differs.
install_file() {
  local dest=$1 mode=$2 owner=${3:-root:root} tmp
  tmp=$(mktemp "$dest.XXXXXX") # 0600 until chmod: secrets are never readable in between
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest" &&
    [ "$(stat -c '%a %U:%G' "$dest")" = "$(stat -c '%a %U:%G' "$tmp")" ]; then
    rm -f "$tmp"
    ok "$dest"
    return 1
  fi
  mv "$tmp" "$dest"
  changed "wrote $dest"
}
# deploy/ holds the files with the default paths; put in the ones of this installation. Markers
# first, so that one replaced path cannot be mistaken for another default.
render() { # deploy file
  sed -e "s#/opt/tasker#@INSTALL@#g; s#/etc/tasker#@ETC@#g; s#/var/lib/tasker#@STATE@#g" \
    -e "s#@INSTALL@#$INSTALL_DIR#g; s#@ETC@#$ETC_DIR#g; s#@STATE@#$STATE_DIR#g" \
    -e "s#^\(ExecStart=\)/usr/bin/node #\1$NODE_BIN #" \
    -e "s#^\(  port:\) 8888\$#\1 $PORT#" "$SOURCE_DIR/deploy/$1" |
    if [ "$STATE_DIR" = /var/lib/tasker ]; then
      cat
    elif [[ $STATE_DIR == /var/lib/* ]]; then
      sed "s#^StateDirectory=.*#StateDirectory=${STATE_DIR#/var/lib/}#"
    else
      sed '/^StateDirectory/d' # systemd manages directories under /var/lib only
    fi
}

install -d -m 0755 "$ETC_DIR/handlers" # custom handlers: first on agent.handlers_dir
render production.yaml | install_file "$ETC_DIR/production.yaml" 0644 && restart=1
render agent.yaml | install_file "$ETC_DIR/agent.yaml" 0644 && restart=1

db_url="mysql://$(urlencode "$DB_USER"):$(urlencode "$DB_PASSWORD")@$DB_HOST:$DB_PORT/$DB_NAME"
vhost_path=$(urlencode "$VHOST")
broker_url() { printf 'amqp://%s:%s@%s:%s/%s' "$(urlencode "$1")" "$(urlencode "$2")" "$BROKER_HOST" "$BROKER_PORT" "$vhost_path"; }
# systemd reads these as root (EnvironmentFile=), so only root may read them.
install_file "$ETC_DIR/tasker.env" 0600 <<EOF && restart=1
# tasker server environment (tasker-server.service), written by scripts/provision.sh
TASKER_DATABASE_URL=$db_url
TASKER_BROKER_URL=$(broker_url "$BROKER_SERVER_USER" "$BROKER_SERVER_PASSWORD")
TASKER_API_TOKEN=$API_TOKEN
EOF
for endpoint in "${ENDPOINTS[@]}"; do
  # broker credentials of this endpoint's own user only: no database access, no API token
  install_file "$ETC_DIR/agent-$endpoint.env" 0600 <<EOF && restart=1
# tasker agent environment (tasker-agent@$endpoint.service), written by scripts/provision.sh
TASKER_BROKER_URL=$(broker_url "$AGENT_BROKER_USER_PREFIX$endpoint" "${AGENT_PASSWORD[$endpoint]}")
EOF
done
for file in "$ETC_DIR"/agent-*.env; do
  endpoint=${file##*/agent-}
  endpoint=${endpoint%.env}
  [[ " ${ENDPOINTS[*]} " == *" $endpoint "* ]] ||
    warn "$file is for endpoint $endpoint, which is no longer in TASKER_ENDPOINTS; left in place"
done

# --- 9. schema -----------------------------------------------------------------------------------
# env -i: tasker rejects TASKER_* variables it does not know, such as this script's own settings.
env_of() { grep -v '^#' "$1"; } # KEY=VALUE lines; values hold no spaces or quotes
mapfile -t server_env < <(env_of "$ETC_DIR/tasker.env")
migrate_out=$(cd "$INSTALL_DIR" && env -i "PATH=$PATH" "${server_env[@]}" "$NODE_BIN" \
  "$INSTALL_DIR/dist/src/cli/main.js" migrate --mode production --config "$ETC_DIR/production.yaml" 2>&1) ||
  die "migration failed: $migrate_out"
if grep -q 'schema is up to date' <<<"$migrate_out"; then
  ok "database schema is up to date"
else
  changed "migrated the schema: $(grep -v '^{' <<<"$migrate_out" | tail -1)"
fi

# --- 10. systemd units ---------------------------------------------------------------------------
install -d -m 0755 "$UNIT_DIR"
units_changed=0
render tasker-server.service | install_file "$UNIT_DIR/tasker-server.service" 0644 && units_changed=1
render 'tasker-agent@.service' | install_file "$UNIT_DIR/tasker-agent@.service" 0644 && units_changed=1
[ "$units_changed" -eq 0 ] || restart=1

services=(tasker-server.service)
for endpoint in "${ENDPOINTS[@]}"; do services+=("tasker-agent@$endpoint.service"); done
if systemd_running; then
  [ "$units_changed" -eq 0 ] || systemctl daemon-reload
  for service in "${services[@]}"; do
    if ! systemctl is-enabled --quiet "$service"; then
      systemctl enable --quiet "$service"
      changed "enabled $service"
    fi
    if ! systemctl is-active --quiet "$service"; then
      systemctl start "$service"
      changed "started $service"
    elif [ "$restart" -eq 1 ]; then
      systemctl restart "$service"
      changed "restarted $service (its build, config or unit changed)"
    else
      ok "$service enabled and running"
    fi
  done
else
  say "systemd is not running on this machine (PID 1 is $(ps -p 1 -o comm=)), so nothing was"
  say "enabled or started. Start the processes by hand, as root, for example:"
  run="env -i PATH=/usr/bin:/bin"
  say "  cd $INSTALL_DIR && $run \$(grep -v '^#' $ETC_DIR/tasker.env) setpriv --reuid=$SERVER_USER --regid=$SERVER_USER --init-groups -- $NODE_BIN $INSTALL_DIR/dist/src/cli/main.js server --mode production --config $ETC_DIR/production.yaml &"
  for endpoint in "${ENDPOINTS[@]}"; do
    say "  cd $STATE_DIR && $run \$(grep -v '^#' $ETC_DIR/agent-$endpoint.env) setpriv --reuid=$AGENT_USER --regid=$AGENT_USER --init-groups -- $NODE_BIN --max-semi-space-size=4 $INSTALL_DIR/dist/src/cli/main.js agent --mode agent --config $ETC_DIR/agent.yaml --endpoint $endpoint &"
  done
  say "Agents need a supervisor to restart them after a crash; on a systemd host this script"
  say "enables: ${services[*]}"
fi

say "API: http://localhost:$PORT/<task type>, token: TASKER_API_TOKEN in $ETC_DIR/tasker.env"
if [ "$changes" -eq 0 ]; then say "provision: no changes"; else say "provision: $changes change(s)"; fi
