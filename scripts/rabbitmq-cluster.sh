#!/usr/bin/env bash
# A RabbitMQ cluster of three nodes on this machine, for tests and trials: each node has its own
# name (tasker-cN@localhost), AMQP port (BASE+N-1), data directory and Erlang cookie under DIR,
# beside whatever RabbitMQ the machine already runs.
#
#   scripts/rabbitmq-cluster.sh start DIR [BASE_PORT]   start three nodes and join them (5681-5683)
#   scripts/rabbitmq-cluster.sh stop DIR                stop them and remove DIR
#   scripts/rabbitmq-cluster.sh restart DIR N           start node N again (after it was killed)
#   scripts/rabbitmq-cluster.sh ctl DIR N ARGS…         rabbitmqctl against node N
#   scripts/rabbitmq-cluster.sh pid DIR N               the OS process id of node N
#
# It prints the broker URL of the cluster (amqp://guest:guest@127.0.0.1:5681,…) on start.
# Needs the rabbitmq-server package (its /usr/lib/rabbitmq/bin) and root or the rabbitmq user.
set -euo pipefail

BIN=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
NODES=3

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[ $# -ge 2 ] || usage
action=$1
dir=$2

node_env() { # n: the environment of node n
  local n=$1 port=$(($(cat "$dir/base_port") + $1 - 1))
  echo "HOME=$dir" \
    "RABBITMQ_NODENAME=tasker-c$n@localhost" \
    "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
    "RABBITMQ_NODE_PORT=$port" \
    "RABBITMQ_DIST_PORT=$((port + 20000))" \
    "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf" \
    "RABBITMQ_CONFIG_FILE=$dir/node$n.conf" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
    "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
    "RABBITMQ_LOG_BASE=$dir/log" \
    "RABBITMQ_PID_FILE=$dir/node$n.pid"
}

ctl() { # n, rabbitmqctl arguments…
  local n=$1
  shift
  env $(node_env "$n") "$BIN/rabbitmqctl" -n "tasker-c$n@localhost" "$@"
}

start_node() { env $(node_env "$1") "$BIN/rabbitmq-server" -detached; }
wait_node() { ctl "$1" wait --timeout 120 "$dir/node$1.pid" > /dev/null; }

case $action in
  start)
    base=${3:-5681}
    mkdir -p "$dir/mnesia" "$dir/log"
    echo "$base" > "$dir/base_port"
    echo '[].' > "$dir/enabled_plugins"
    echo '[].' > "$dir/advanced.config"
    # epmd and distribution on the loopback only, as the machine's own node has them
    printf 'ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n' \
      > "$dir/rabbitmq-env.conf"
    # one cookie for the three nodes and rabbitmqctl, apart from the machine's own node
    head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/.erlang.cookie"
    chmod 400 "$dir/.erlang.cookie"
    for n in $(seq $NODES); do
      printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$((base + n - 1))" \
        > "$dir/node$n.conf"
      start_node "$n"
    done
    for n in $(seq $NODES); do wait_node "$n"; done
    for n in $(seq 2 $NODES); do
      ctl "$n" stop_app > /dev/null
      ctl "$n" join_cluster tasker-c1@localhost > /dev/null
      ctl "$n" start_app > /dev/null
    done
    urls=()
    for n in $(seq $NODES); do urls+=("amqp://guest:guest@127.0.0.1:$((base + n - 1))"); done
    (IFS=,; echo "${urls[*]}")
    ;;
  stop)
    if [ -f "$dir/base_port" ]; then
      for n in $(seq $NODES); do
        if [ -f "$dir/node$n.pid" ]; then
          pid=$(cat "$dir/node$n.pid")
          kill -CONT "$pid" 2> /dev/null || true
          ctl "$n" stop > /dev/null 2>&1 || kill -9 "$pid" 2> /dev/null || true
        fi
      done
    fi
    rm -rf "$dir"
    ;;
  restart)
    # a node that was killed: it finds its cluster again from its data directory
    [ $# -ge 3 ] || usage
    start_node "$3"
    wait_node "$3"
    ;;
  ctl)
    [ $# -ge 3 ] || usage
    n=$3
    shift 3
    ctl "$n" "$@"
    ;;
  pid)
    [ $# -ge 3 ] || usage
    cat "$dir/node$3.pid"
    ;;
  *) usage ;;
esac
