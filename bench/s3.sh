#!/usr/bin/env bash
# Benchmark on object storage: our GC dry run
# `reg-refs --tagged-only | reg-orphans` against the registry's own
# `docker-registry garbage-collect --dry-run --delete-untagged`, both on the
# same bucket of moto's S3 server on 127.0.0.1 (through the registry's s3
# driver config), directly and through a proxy that adds a delay to every
# request (real S3 costs tens of milliseconds a request; moto on 127.0.0.1
# almost nothing but its own work).
#
# Usage: bench/s3.sh [--blobs N] [--seed S] [--delay-ms D] [--gc-timeout SECS]
#                    [--moto PATH] [--dir BASE] [--out FILE]
#
#   --blobs N       stored blobs of the generated tree (default 13000: about
#                   31,000 objects)
#   --seed S        generator seed (default 1)
#   --delay-ms D    the proxy's delay per request (default 20; 0: no proxy run)
#   --gc-timeout S  stop each registry GC after S seconds (default 1200) and
#                   record that it exceeded the cap
#   --no-registry   time ours only
#   --proxy-only    only the run through the proxy (for a long --gc-timeout)
#   --moto PATH     moto_server to run (default: $REG_TESTS_MOTO_SERVER, then
#                   target/moto-venv/bin/moto_server, then PATH)
#   --dir BASE      where the tree is generated (default /tmp/bench-trees)
#   --out FILE      also append the markdown table to FILE
#
# Requests are counted from moto's own request log, by kind: LIST (flat),
# LIST/ (with a delimiter), GET, HEAD, PUT, DeleteObjects, other. Both sides
# run with everything older than any grace period (--min-age 0s), so they
# read the same things.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
blobs=13000
seed=1
delay=20
gc_timeout=1200
moto=${REG_TESTS_MOTO_SERVER:-}
base=/tmp/bench-trees
out_file=
registry=1
direct=1

while [ $# -gt 0 ]; do
  case "$1" in
    --blobs) blobs=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --delay-ms) delay=${2:?}; shift 2 ;;
    --gc-timeout) gc_timeout=${2:?}; shift 2 ;;
    --moto) moto=${2:?}; shift 2 ;;
    --no-registry) registry=0; shift ;;
    --proxy-only) direct=0; shift ;;
    --dir) base=${2:?}; shift 2 ;;
    --out) out_file=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "s3.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
note() { echo "s3.sh: $*" >&2; }
[ -n "$moto" ] || { [ -x "$repo/target/moto-venv/bin/moto_server" ] && moto=$repo/target/moto-venv/bin/moto_server; } || true
[ -n "$moto" ] || moto=$(command -v moto_server || true)
[ -n "$moto" ] || { note "no moto_server (pip install 'moto[server]', or bash .ci/run once)"; exit 1; }
command -v docker-registry >/dev/null || { note "no docker-registry (apt-get install docker-registry)"; exit 1; }

note "building (release)"
# (--bin and --example filter every package named: one build each.)
(cd "$repo" && cargo build --release -q -p reg-refs -p reg-orphans &&
  cargo build --release -q -p reg-tests --bin delay-proxy &&
  cargo build --release -q -p reg-core --example gen_tree --example s3_upload)
bin=${CARGO_TARGET_DIR:-$repo/target}/release

tree=$base/s3-$blobs-$seed
gen_tree "$bin/examples/gen_tree" "$tree" "$blobs" "$seed"
files=$(find "$tree/docker/registry/v2" -type f | wc -l)

start_work reg-bench-s3

port=$(free_port)
"$moto" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
curl -fs -X PUT "http://127.0.0.1:$port/bench" >/dev/null
note "uploading $files objects"
t0=$(date +%s.%N)
AWS_ENDPOINT_URL=http://127.0.0.1:$port "$bin/examples/s3_upload" "$tree" s3://bench/registry
note "uploaded in $(awk "BEGIN { printf \"%.0f\", $(date +%s.%N) - $t0 }") s"

config() { # endpoint -> config.yml
  registry_config "  s3:
    accesskey: bench
    secretkey: bench-secret
    region: us-east-1
    regionendpoint: $1
    bucket: bench
    rootdirectory: /registry
    secure: false
    v4auth: true
  redirect:
    disable: true" >"$work/config-$2.yml"
}

# requests FROM_LINE: moto's requests after that log line, by kind (the
# log colours some lines: the escapes go first).
requests() {
  tail -n +"$(( $1 + 1 ))" "$work/moto.log" | sed 's/\x1b\[[0-9;]*m//g' | awk '
    /"(GET|HEAD|PUT|POST|DELETE) / {
      split($0, q, "\""); split(q[2], r, " "); m = r[1]; u = r[2]
      if (m == "GET" && u ~ /list-type=|delimiter=/) k = (u ~ /delimiter=/) ? "LIST/" : "LIST"
      else if (m == "POST" && u ~ /[?&]delete/) k = "DeleteObjects"
      else if (m == "GET" || m == "HEAD" || m == "PUT") k = m
      else k = "other"
      n[k]++; t++
    }
    END {
      s = ""; split("LIST LIST/ GET HEAD PUT DeleteObjects other", ks, " ")
      for (i = 1; i <= 7; i++) if (n[ks[i]]) s = s sprintf("%s%d %s", (s == "" ? "" : ", "), n[ks[i]], ks[i])
      printf "%d (%s)", t, s
    }'
}
lines() { wc -l <"$work/moto.log"; }

rows=()
run_at() { # label endpoint
  local label=$1 ep=$2 l t0 ours ours_req theirs theirs_req st
  config "$ep" "$label"
  local cfg=$work/config-$label.yml
  note "$label: ours"
  l=$(lines); t0=$(now)
  "$bin/reg-refs" --tagged-only --config "$cfg" | "$bin/reg-orphans" --min-age 0s --config "$cfg" >"$work/ours-$label.out"
  ours=$(secs "$t0" "$(now)"); ours_req=$(requests "$l")
  note "$label: ours $ours s, $ours_req requests"
  if [ "$registry" = 0 ]; then
    rows+=("| $label | $ours s | $ours_req | | | |")
    return
  fi
  note "$label: registry (up to $gc_timeout s)"
  l=$(lines); t0=$(now)
  set +e
  timeout "$gc_timeout" docker-registry garbage-collect --dry-run --delete-untagged "$cfg" >"$work/gc-$label.out" 2>"$work/gc-$label.err"
  st=$?
  set -e
  theirs=$(secs "$t0" "$(now)"); theirs_req=$(requests "$l")
  if [ "$st" = 124 ]; then theirs="> $theirs (stopped)"; elif [ "$st" != 0 ]; then
    note "garbage-collect failed ($st):"; tail -5 "$work/gc-$label.err" >&2; theirs="failed"; fi
  note "$label: registry $theirs s, $theirs_req requests"
  rows+=("| $label | $ours s | $ours_req | $theirs s | $theirs_req | $(awk "BEGIN { a = \"${theirs#> }\" + 0; b = $ours + 0; if (b > 0 && a > 0) printf \"%.0fx\", a / b }") |")
}

[ "$direct" = 0 ] || run_at "moto" "http://127.0.0.1:$port"
if [ "$delay" != 0 ]; then
  start_delay_proxy "$bin/delay-proxy" "$port" "$delay" "$work/proxy.port"
  run_at "moto + ${delay} ms" "http://127.0.0.1:$proxy_port"
fi

{
  echo
  echo "Bucket: $files objects ($blobs blobs, seed $seed), moto $("$moto" --version 2>/dev/null | head -1 || true), $(docker-registry --version 2>/dev/null | head -1)"
  echo
  echo "| endpoint | ours: wall | ours: requests | registry GC: wall | registry GC: requests | registry / ours |"
  echo "|---|---:|---|---:|---|---:|"
  printf '%s\n' "${rows[@]}"
} | tee -a "${out_file:-/dev/null}"
