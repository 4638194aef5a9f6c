#!/usr/bin/env bash
# Benchmark at scale on object storage: the tagged-only GC dry run
# `reg-refs --tagged-only | reg-orphans | reg-rm --dry-run`, and each tool
# alone, on a generated registry served as a bucket by
# ../shared/bench/mems3.py (an in-memory S3 server that counts requests by
# kind), directly and through a proxy that holds every request --delay-ms.
#
# Usage: bench/scale.sh [--blobs N]... [--bin DIR]... [--delay-ms D] [--seed S]
#                       [--dir BASE] [--mems3 PATH] [--proxy PATH]
#                       [--inventory csv|parquet] [--save]
#
#   --blobs N      stored blobs of a generated tree (repeatable; default
#                  43000: about 100,000 objects; 130000: ~300k; 440000: ~1M)
#   --bin DIR      a directory holding reg-refs, reg-orphans and reg-rm
#                  (repeatable, to compare builds; default: this
#                  repository's release build, built first)
#   --delay-ms D   the proxy's delay per request (default 20; 0: no proxy run)
#   --no-direct    only the run through the proxy
#   --no-pipeline  the tools one after the other only (no piped run)
#   --seed S       generator seed (default 1)
#   --dir BASE     where trees are generated (default /tmp/bench-trees; a
#                  1M-object tree wants a tmpfs with many inodes)
#   --mems3 PATH   the S3 server (default ../shared/bench/mems3.py)
#   --proxy PATH   the delay proxy (default: target/{release,debug}/delay-proxy,
#                  built if neither is there)
#   --inventory F  also run reg-refs and reg-orphans from an S3 Inventory
#                  report of the bucket (F: csv or parquet), written into
#                  mems3 by reg-tests' inventory-report; their records are
#                  compared with the live listing's, and reg-orphans runs
#                  with --min-age 1h (a report must be younger than it)
#   --save         also append the tables to bench/results.md
#
# GEN_TREE=PATH: the tree generator to use (default: this repository's
# release build of reg-core's gen_tree example, built when a tree is missing).
#
# Each tool runs under GNU time (`apt-get install time`): wall, CPU
# (user+sys), peak RSS, and RSS per object of the bucket. Requests by kind
# come from mems3's /__stats, reset before each tool. Each build runs with
# its own empty manifest cache (XDG_CACHE_HOME in a temporary directory),
# shared by its three tools, as on an operator's machine. The outputs of
# every build are compared with the first's: the records must be identical.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
blobs=()
bins=()
delay=20
seed=1
base=/tmp/bench-trees
mems3=$(cd "$repo/.." && pwd)/shared/bench/mems3.py
proxy=
save=0
direct=1
pipeline=1
inventory=

while [ $# -gt 0 ]; do
  case "$1" in
    --blobs) blobs+=("${2:?}"); shift 2 ;;
    --bin) bins+=("$(cd "${2:?}" && pwd)"); shift 2 ;;
    --delay-ms) delay=${2:?}; shift 2 ;;
    --no-direct) direct=0; shift ;;
    --no-pipeline) pipeline=0; shift ;;
    --seed) seed=${2:?}; shift 2 ;;
    --dir) base=${2:?}; shift 2 ;;
    --mems3) mems3=${2:?}; shift 2 ;;
    --proxy) proxy=${2:?}; shift 2 ;;
    --save) save=1; shift ;;
    --inventory) inventory=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "scale.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ ${#blobs[@]} -gt 0 ] || blobs=(43000)
exec 3>&2
note() { echo "scale.sh: $*" >&3; }
[ -x /usr/bin/time ] || { note "no GNU time (apt-get install time)"; exit 1; }
[ -f "$mems3" ] || { note "no $mems3 (--mems3 PATH)"; exit 1; }

target=${CARGO_TARGET_DIR:-$repo/target}
if [ ${#bins[@]} -eq 0 ]; then
  note "building (release)"
  (cd "$repo" && cargo build --release -q -p reg-refs -p reg-orphans -p reg-rm)
  bins=("$target/release")
fi
gen=${GEN_TREE:-$target/release/examples/gen_tree}
if [ -z "$proxy" ] && [ "$delay" != 0 ]; then
  for p in "$target/release/delay-proxy" "$target/debug/delay-proxy"; do
    [ -x "$p" ] && { proxy=$p; break; }
  done
  [ -n "$proxy" ] || { (cd "$repo" && cargo build --release -q -p reg-tests --bin delay-proxy); proxy=$target/release/delay-proxy; }
fi

report_tool=
if [ -n "$inventory" ]; then
  for p in "$target/release/inventory-report" "$target/debug/inventory-report"; do
    [ -x "$p" ] && { report_tool=$p; break; }
  done
  [ -n "$report_tool" ] || { (cd "$repo" && cargo build -q -p reg-tests --bin inventory-report); report_tool=$target/debug/inventory-report; }
fi
# reg-orphans' grace period: none, unless a report is used (the tools
# refuse a report older than --min-age).
orphans_age=0s
[ -z "$inventory" ] || orphans_age=1h

start_work reg-bench-scale

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1

# stats PORT: mems3's counts since the last reset, as "3 LIST, 5 GET".
stats() {
  curl -fs "http://127.0.0.1:$1/__stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
order = ["LIST", "LIST/", "GET", "HEAD", "PUT", "DeleteObjects"]
ks = [k for k in order if s.get(k)] + sorted(k for k in s if k not in order and s[k])
print(", ".join(f"{s[k]:,} {k}" for k in ks) or "none")'
}
reset() { curl -fs -X POST "http://127.0.0.1:$1/__reset" >/dev/null; }

# timed OUT_PREFIX CMD...: runs CMD under GNU time into OUT_PREFIX.time
# (the caller redirects CMD's input and output); `took` reads it back.
timed() {
  local out=$1; shift
  /usr/bin/time -f '%e %U %S %M' -o "$out.time" "$@" || note "$* failed: $(tail -2 "$out.err" 2>/dev/null)"
}
# took OUT_PREFIX: "wall cpu rss_kib" (time's last line: a failed command
# has a line before it).
took() { tail -1 "$1.time" | awk '{ printf "%s %.1f %s", $1, $2 + $3, $4 }'; }

rows=()
declare -A firsts
run_build() { # label mems3_port endpoint bin objects tree_id [inventory_url]
  local label=$1 port=$2 ep=$3 bin=$4 objects=$5 id=$6 inv=${7:-} url=s3://bench/registry
  local cache out t w c r req shown=$1
  local -a from=()
  if [ -n "$inv" ]; then
    from=(--inventory "$inv")
    shown="$label, $inventory report"
  fi
  cache=$(mktemp -d "$work/cache.XXXXXX")
  out=$work/$id-$label-${inv:+inv-}$(echo "$bin" | md5sum | cut -c1-8)
  export AWS_ENDPOINT_URL=$ep
  local -a env=(env XDG_CACHE_HOME="$cache")
  for tool in refs orphans rm; do
    reset "$port"
    case $tool in
      refs) timed "$out.refs" "${env[@]}" "$bin/reg-refs" --tagged-only "${from[@]}" "$url" </dev/null >"$out.refs.out" 2>"$out.refs.err" ;;
      orphans) timed "$out.orphans" "${env[@]}" "$bin/reg-orphans" --min-age "$orphans_age" "${from[@]}" "$url" <"$out.refs.out" >"$out.orphans.out" 2>"$out.orphans.err" ;;
      rm) timed "$out.rm" "${env[@]}" "$bin/reg-rm" --dry-run --min-age 0s "$url" <"$out.orphans.out" >"$out.rm.out" 2>"$out.rm.err" ;;
    esac
    t=$(took "$out.$tool")
    req=$(stats "$port")
    read -r w c r <<<"$t"
    rows+=("| $objects | $shown | $bin | reg-${tool} | $w s | $c s | $((r / 1024)) MiB | $(awk "BEGIN { printf \"%.0f\", $r * 1024 / $objects }") | $req |")
    note "$objects $shown reg-$tool: $w s wall, $c s CPU, $((r / 1024)) MiB, $req"
  done
  if [ "$pipeline" = 1 ] && [ -z "$inv" ]; then
    cache=$(mktemp -d "$work/cache.XXXXXX")
    reset "$port"
    local t0; t0=$(now)
    XDG_CACHE_HOME=$cache "$bin/reg-refs" --tagged-only "$url" 2>/dev/null |
      XDG_CACHE_HOME=$cache "$bin/reg-orphans" --min-age "$orphans_age" "$url" 2>/dev/null |
      XDG_CACHE_HOME=$cache "$bin/reg-rm" --dry-run --min-age 0s "$url" >"$out.pipe.out" 2>/dev/null
    w=$(secs "$t0" "$(now)")
    req=$(stats "$port")
    rows+=("| $objects | $label | $bin | pipeline | $w s | | | | $req |")
    note "$objects $label pipeline: $w s, $req"
  fi
  # Records must not depend on the build, nor on a report standing in for
  # the listing: compared with the first build's live run.
  local key=$id-$label
  if [ -z "${firsts[$key]:-}" ]; then
    firsts[$key]=$out
  else
    for f in refs orphans rm; do
      if cmp -s "${firsts[$key]}.$f.out" "$out.$f.out"; then
        note "$objects $shown reg-$f: records identical to $(basename "${firsts[$key]}")'s"
      else
        note "$objects $shown reg-$f: RECORDS DIFFER from the first build's"
        rows+=("| $objects | $shown | $bin | reg-$f | records DIFFER from the first build's live run | | | | |")
      fi
    done
  fi
  unset AWS_ENDPOINT_URL
}

for n in "${blobs[@]}"; do
  tree=$base/scale-$n-$seed
  [ -f "$tree/gen-tree.json" ] || [ -x "$gen" ] || (cd "$repo" && cargo build --release -q -p reg-core --example gen_tree)
  gen_tree "$gen" "$tree" "$n" "$seed"
  objects=$(find "$tree/docker/registry/v2" -type f | wc -l)
  port=$(free_port)
  note "loading $objects objects into mems3"
  python3 "$mems3" --port "$port" --load "bench/registry=$tree" >"$work/mems3-$n.log" 2>&1 &
  mpid=$!
  pids+=($mpid)
  until curl -fs "http://127.0.0.1:$port/__stats" >/dev/null 2>&1; do
    kill -0 "$mpid" 2>/dev/null || { note "mems3 stopped:"; cat "$work/mems3-$n.log" >&2; exit 1; }
    sleep 2
  done
  note "$(tail -1 "$work/mems3-$n.log")"
  inv=
  if [ -n "$inventory" ]; then
    inv=$("$report_tool" "http://127.0.0.1:$port" bench inventory "$inventory" 8 2>"$work/inventory-$n.err") ||
      { note "inventory-report failed:"; cat "$work/inventory-$n.err" >&2; exit 1; }
    note "$(tail -1 "$work/inventory-$n.err"): $inv"
  fi
  if [ "$direct" = 1 ]; then
    for b in "${bins[@]}"; do
      run_build direct "$port" "http://127.0.0.1:$port" "$b" "$objects" "$n"
      [ -z "$inv" ] || run_build direct "$port" "http://127.0.0.1:$port" "$b" "$objects" "$n" "$inv"
    done
  fi
  if [ "$delay" != 0 ]; then
    start_delay_proxy "$proxy" "$port" "$delay" "$work/proxy-$n.port"
    for b in "${bins[@]}"; do
      run_build "${delay} ms" "$port" "http://127.0.0.1:$proxy_port" "$b" "$objects" "$n"
      [ -z "$inv" ] || run_build "${delay} ms" "$port" "http://127.0.0.1:$proxy_port" "$b" "$objects" "$n" "$inv"
    done
    kill "$proxy_pid" 2>/dev/null || true
  fi
  kill "$mpid" 2>/dev/null || true
done

{
  echo
  echo "Scale: seed $seed, $(date -u +%Y-%m-%d), $(nproc) cores; mems3 on 127.0.0.1, delay proxy ${delay} ms"
  echo
  echo "| objects | endpoint | build | tool | wall | CPU | peak RSS | RSS B/object | requests |"
  echo "|---:|---|---|---|---:|---:|---:|---:|---|"
  printf '%s\n' "${rows[@]}"
} | if [ "$save" = 1 ]; then tee -a "$here/results.md"; else cat; fi
