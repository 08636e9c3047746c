#!/bin/sh
# The start and stop steps of the Redis pods. Run by the init containers and preStop hooks
# (Kubernetes), the compose entrypoints and test/deploy (shipped-redis.ts), so what is tested is
# what runs.
#
#   redis-pod.sh data <queue|cache> OUT  writes OUT/redis.conf (<role>.conf, then the ACL file path
#                                        and replication) and OUT/users.acl from the shipped files
#                                        and the secrets, for redis-server OUT/redis.conf --dir DATA
#   redis-pod.sh sentinel OUT            writes OUT/sentinel.conf, for
#                                        redis-server OUT/sentinel.conf --sentinel
#   redis-pod.sh prestop                 when this node is the master its Sentinels watch, has them
#                                        promote a replica first (a rolling update or a node drain
#                                        then costs a failover of seconds, not down-after's 30 s
#                                        without a master); returns once they name the new master
#                                        (clients follow them), or after 30 s
#
# Secrets (at least 16 characters of A-Z a-z 0-9 . _ ~ + / = -; `openssl rand -hex 32` makes one):
#   REDIS_APP_PASSWORD, REDIS_REPLICA_PASSWORD, REDIS_SENTINEL_PASSWORD, REDIS_ADMIN_PASSWORD, and
#   REDIS_KEDA_PASSWORD and REDIS_BACKUP_PASSWORD for the queue role. The ACL file holds their SHA-256, never the password.
# Where the master is (data):
#   REDIS_MASTER          "host port" of the master, or "none" when this process is the master
#                         (compose, tests). Unset: the Sentinels are asked (SENTINEL_HOSTS,
#                         MASTER_NAME); if none answers, pod ordinal 0 of the StatefulSet is master.
#   POD_NAME, HEADLESS_SERVICE, POD_NAMESPACE   e.g. queue-redis-1, queue-redis-headless, cachefleet
#   ANNOUNCE_HOST         the name others reach this node by (default POD_NAME.HEADLESS_SERVICE)
#   REDIS_PORT            the port it listens on (default 6379): a Sentinel naming this host and
#                         port names this node
# prestop: MASTER_NAME, SENTINEL_HOSTS (none: nothing to do), REDIS_SENTINEL_PASSWORD (the
#   `sentinel` ACL user reads this node's role), REDIS_PORT
# SENTINEL_AUTH_PASSWORD  the Sentinels' own password (requirepass): required by `sentinel`, which
#                         also gives it to the other Sentinels (sentinel-pass); data and prestop
#                         log in to the Sentinels with it when it is set
# What Sentinel watches (sentinel):
#   SENTINEL_MASTERS      "name=host:port ..." the initial master of each watched set; at start the
#                         other Sentinels (SENTINEL_HOSTS) are asked first, then that node itself
#                         (a replica names its master)
#   POD_NAME, HEADLESS_SERVICE, POD_NAMESPACE, ANNOUNCE_HOST   as above; the Sentinel's stable id
#                         is derived from POD_NAME
# SENTINEL_PORT: the Sentinels' port (default 26379).
# Names of the form <pod>.<service> are completed to <pod>.<service>.<POD_NAMESPACE>.svc when
# POD_NAMESPACE is set, so that they resolve from other namespaces too: KEDA's operator asks the
# Sentinels from its own, and connects to the master they name.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
fail() {
  echo "redis-pod.sh: $*" >&2
  exit 1
}

# The value of the secret in variable $1, checked: it goes into config files unquoted.
secret() {
  value=$(printenv "$1") || fail "$1: not set"
  [ "${#value}" -ge 16 ] || fail "$1: at least 16 characters"
  case $value in
  *[!A-Za-z0-9._~+/=-]*) fail "$1: only letters, digits and . _ ~ + / = -" ;;
  esac
  printf '%s' "$value"
}

# Redis ACL files allow no comments: drop them, and put each secret's SHA-256 in its place. Every
# secret is checked before anything is written.
render_acl() {
  script=''
  for var in $(grep -v '^#' "$1" | grep -o '{{sha256 [A-Z_]*}}' | sed 's/{{sha256 \(.*\)}}/\1/' | sort -u); do
    value=$(secret "$var")
    script="$script s/{{sha256 $var}}/$(printf '%s' "$value" | sha256sum | cut -d' ' -f1)/g;"
  done
  grep -v -e '^#' -e '^[[:space:]]*$' "$1" | sed "$script" >"$2"
}

qualify() {
  case $1 in
  *.*.*) echo "$1" ;;
  *.*) echo "$1${POD_NAMESPACE:+.$POD_NAMESPACE.svc}" ;;
  *) echo "$1" ;;
  esac
}

# This process's own name: ANNOUNCE_HOST, else POD_NAME.HEADLESS_SERVICE, else nothing.
self_name() {
  if [ -n "${ANNOUNCE_HOST:-}" ]; then
    echo "$ANNOUNCE_HOST"
  elif [ -n "${POD_NAME:-}" ]; then
    qualify "$POD_NAME.${HEADLESS_SERVICE:?HEADLESS_SERVICE is not set}"
  fi
}

# redis-cli with a short time-out (an unreachable host must not hold the pod's start). Sentinels
# are asked with their password (SENTINEL_AUTH_PASSWORD); data nodes as the `sentinel` user (ask_node).
ask() {
  if [ -n "${SENTINEL_AUTH_PASSWORD:-}" ]; then
    REDISCLI_AUTH=$(secret SENTINEL_AUTH_PASSWORD) timeout 3 redis-cli --no-auth-warning "$@" 2>/dev/null || true
  else
    timeout 3 redis-cli "$@" 2>/dev/null || true
  fi
}
ask_node() {
  REDISCLI_AUTH=$(secret REDIS_SENTINEL_PASSWORD) timeout 3 redis-cli --no-auth-warning --user sentinel "$@" \
    2>/dev/null || true
}

# "host port" of the master that the first Sentinel (SENTINEL_HOSTS) to answer names for $1.
master_from_sentinels() {
  for s in ${SENTINEL_HOSTS:-}; do
    reply=$(ask -h "$(qualify "$s")" -p "${SENTINEL_PORT:-26379}" --raw SENTINEL get-master-addr-by-name "$1" | tr '\n' ' ')
    if [ "$(echo $reply | wc -w)" -eq 2 ]; then
      echo $reply
      return
    fi
  done
}

data() {
  role=$1
  out=$2
  [ -f "$here/$role.conf" ] || fail "unknown role '$role' (queue or cache)"
  replica_pass=$(secret REDIS_REPLICA_PASSWORD)
  mkdir -p "$out"
  render_acl "$here/$role-users.acl" "$out/users.acl"
  self=$(self_name)
  master=${REDIS_MASTER:-}
  if [ -z "$master" ]; then
    master=$(master_from_sentinels "${MASTER_NAME:-$role}")
    if [ "$master" = "$self ${REDIS_PORT:-6379}" ]; then master=none; fi
    if [ -z "$master" ]; then
      # No Sentinel answers: a new set. Its first pod starts as the master.
      case ${POD_NAME:?POD_NAME is not set} in
      *-0) master=none ;;
      *) master="$(qualify "${POD_NAME%-*}-0.$HEADLESS_SERVICE") 6379" ;;
      esac
    fi
  fi
  {
    cat "$here/$role.conf"
    echo
    echo "# Written by redis-pod.sh at start"
    echo "aclfile $out/users.acl"
    echo "masteruser replica"
    echo "masterauth $replica_pass"
    if [ -n "$self" ]; then echo "replica-announce-ip $self"; fi
    if [ "$master" != none ]; then echo "replicaof $master"; fi
  } >"$out/redis.conf"
  chmod 600 "$out/redis.conf" "$out/users.acl"
}

sentinel() {
  out=$1
  mkdir -p "$out"
  pass=$(secret REDIS_SENTINEL_PASSWORD)
  own=$(secret SENTINEL_AUTH_PASSWORD)
  id=$(printf '%s' "${POD_NAME:-$(hostname)}" | sha1sum | cut -d' ' -f1)
  {
    cat "$here/sentinel.conf"
    echo
    echo "# Written by redis-pod.sh at start"
    # The same id after a restart: the other Sentinels keep counting this one once, not twice.
    echo "sentinel myid $id"
    # Clients (the fleet, KEDA, redis-pod.sh) and the other Sentinels log in with it.
    echo "requirepass $own"
    echo "sentinel sentinel-pass $own"
    self=$(self_name)
    if [ -n "$self" ]; then echo "sentinel announce-ip $self"; fi
    for entry in ${SENTINEL_MASTERS:?SENTINEL_MASTERS is not set}; do
      name=${entry%%=*}
      addr=${entry#*=}
      addr="$(qualify "${addr%:*}"):${addr##*:}"
      master=$(master_from_sentinels "$name")
      if [ -z "$master" ]; then
        # No other Sentinel knows: ask the initial master; after a failover it is a replica and
        # names the master it follows.
        info=$(ask_node -h "${addr%:*}" -p "${addr##*:}" INFO replication | tr -d '\r')
        host=$(echo "$info" | sed -n 's/^master_host://p')
        port=$(echo "$info" | sed -n 's/^master_port://p')
        if [ -n "$host" ] && [ -n "$port" ]; then master="$host $port"; else master="${addr%:*} ${addr##*:}"; fi
      fi
      sed -e "s/{{master}}/$name/g" -e "s/{{host}}/${master% *}/g" -e "s/{{port}}/${master#* }/g" \
        "$here/sentinel-master.conf" | grep -v '^#'
      echo "sentinel auth-pass $name $pass"
    done
  } >"$out/sentinel.conf"
  chmod 600 "$out/sentinel.conf"
}

prestop() {
  [ -n "${SENTINEL_HOSTS:-}" ] || return 0
  secret REDIS_SENTINEL_PASSWORD >/dev/null
  role=$(ask_node -p "${REDIS_PORT:-6379}" ROLE | head -n 1)
  [ "$role" = master ] || return 0
  # This node is the master, so the address the Sentinels give now is this node's.
  me=$(master_from_sentinels "$MASTER_NAME")
  [ -n "$me" ] || return 0
  for s in $SENTINEL_HOSTS; do
    [ "$(ask -h "$(qualify "$s")" -p "${SENTINEL_PORT:-26379}" SENTINEL FAILOVER "$MASTER_NAME")" = OK ] && break
  done
  i=0
  while [ "$i" -lt 30 ] && [ "$(master_from_sentinels "$MASTER_NAME")" = "$me" ]; do
    sleep 1
    i=$((i + 1))
  done
}

case ${1:-} in
data) data "${2:?role}" "${3:?output folder}" ;;
sentinel) sentinel "${2:?output folder}" ;;
prestop) prestop ;;
*) fail "usage: redis-pod.sh data <queue|cache> OUT | redis-pod.sh sentinel OUT | redis-pod.sh prestop" ;;
esac
