# What bench/run.sh, s3.sh and scale.sh share; each sources it right after
# `set -euo pipefail`. It sets `here` (bench/) and `repo`, and defines:
#   usage            the calling script's header comment, on stderr; exits 2
#   now, secs T0 T1  the time, and the seconds between two of them (0.1 s)
#   free_port        a free TCP port on 127.0.0.1
#   start_work NAME  a temporary directory `work`, removed on exit with every
#                    background process whose pid is added to `pids`
#   gen_tree GEN TREE BLOBS SEED [ARGS...]
#                    generates TREE with gen_tree GEN unless it is there
#   start_delay_proxy PROXY PORT DELAY_MS FILE
#                    runs a delay proxy in front of PORT: `proxy_port`,
#                    `proxy_pid`
#   registry_config STORAGE
#                    a docker-registry config.yml for its garbage-collect,
#                    STORAGE the driver's lines under `storage:`
# Each script defines `note` (its name, and where its messages go).

here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
repo=$(dirname "$here")

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[-1]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }

now() { date +%s.%N; }
secs() { awk "BEGIN { printf \"%.1f\", $2 - $1 }"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_work() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  pids=()
  trap cleanup EXIT
}
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }

gen_tree() {
  local gen=$1 tree=$2 blobs=$3 seed=$4
  shift 4
  if [ ! -f "$tree/gen-tree.json" ]; then
    note "generating $tree"
    "$gen" "$tree" --blobs "$blobs" --seed "$seed" "$@" --force >/dev/null
  fi
}

start_delay_proxy() {
  local proxy=$1 port=$2 delay=$3 file=$4
  "$proxy" "$port" "$delay" >"$file" &
  proxy_pid=$!
  pids+=("$proxy_pid")
  for _ in $(seq 50); do [ -s "$file" ] && break; sleep 0.1; done
  proxy_port=$(cat "$file")
}

registry_config() {
  cat <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
$1
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
EOF
}
