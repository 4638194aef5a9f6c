#!/usr/bin/env bash
# Benchmark: the GC dry run `reg-refs --tagged-only ROOT | reg-orphans ROOT`
# against the registry's own `docker-registry garbage-collect --dry-run
# --delete-untagged` and a bare `find ROOT -type f | wc -l` (the floor), on
# synthetic trees written by reg-core's gen_tree example.
#
# Usage: bench/run.sh [--blobs N]... [--many-tags T]... [--seed S] [--dir BASE]
#                     [--runs K] [--gc-timeout SECS] [--no-registry] [--out FILE]
#
#   --blobs N       stored blobs of a tree (repeatable; default 100000)
#   --many-tags T   tags in the tree's bench/many-tags repository (repeatable;
#                   default: gen_tree's, blobs/20 up to 5000)
#   --seed S        generator seed (default 1)
#   --dir BASE      where trees live (default /tmp/bench-trees); a tree of the
#                   same blobs/seed/tags is reused, anything else regenerated
#   --runs K        timed runs of find and of our pipeline; the fastest counts
#                   (default 3; the registry runs once)
#   --gc-timeout S  stop the registry's GC after S seconds (default 900) and
#                   record that it exceeded the cap
#   --no-registry   skip the registry's GC
#   --drop-caches   drop the kernel's caches before warming (root only), so a
#                   tree larger than what fits does not compete with stale cache
#   --syscalls      also count each tool's system calls with strace -f -c
#                   (one extra run each, not timed) and print them per stored file
#   --out FILE      also append the markdown table to FILE
#
# Each tree: one untimed `find` and one untimed run of our pipeline warm the
# page cache (dentries, inodes, link files and manifests, which is all that
# any of the three reads), then find, ours and the registry are timed in
# turn. Wall time is measured around the whole pipeline; CPU (user+sys) and
# peak RSS come from GNU time for each process, and a pipeline's peak is the
# sum of its processes' peaks (they run at the same time). The reg-refs and
# reg-orphans rows are the two halves of "ours".
#
# Needs: cargo, docker-registry (Debian package `docker-registry`), GNU time
# (package `time`; installed with apt-get when missing and possible, else CPU
# comes from bash `times` and peak RSS is not measured).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

blobs_list=()
tags_list=()
seed=1
base=/tmp/bench-trees
runs=3
gc_timeout=900
registry=1
drop_caches=0
syscalls=0
out_file=

while [ $# -gt 0 ]; do
  case "$1" in
    --blobs) blobs_list+=("${2:?--blobs N}"); shift 2 ;;
    --many-tags) tags_list+=("${2:?--many-tags T}"); shift 2 ;;
    --seed) seed=${2:?--seed S}; shift 2 ;;
    --dir) base=${2:?--dir BASE}; shift 2 ;;
    --runs) runs=${2:?--runs K}; shift 2 ;;
    --gc-timeout) gc_timeout=${2:?--gc-timeout SECS}; shift 2 ;;
    --no-registry) registry=0; shift ;;
    --drop-caches) drop_caches=1; shift ;;
    --syscalls) syscalls=1; shift ;;
    --out) out_file=${2:?--out FILE}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ ${#blobs_list[@]} -gt 0 ] || blobs_list=(100000)
[ ${#tags_list[@]} -gt 0 ] || tags_list=(default)
for n in "${blobs_list[@]}" "$seed" "$runs" "$gc_timeout"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "run.sh: '$n' is not a number" >&2; exit 2; }
done

note() { echo "run.sh: $*" >&2; }

# ---- tools -------------------------------------------------------------------
TIME=/usr/bin/time
if ! [ -x "$TIME" ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    note "installing GNU time"; apt-get install -y -qq time >/dev/null 2>&1 || true
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    note "installing GNU time"; sudo -n apt-get install -y -qq time >/dev/null 2>&1 || true
  fi
fi
[ -x "$TIME" ] || { TIME=; note "no GNU time: CPU from bash 'times', peak RSS not measured"; }
if [ "$registry" = 1 ] && ! command -v docker-registry >/dev/null; then
  note "docker-registry not found (apt-get install docker-registry); skipping the registry's GC"
  registry=0
fi

if [ "$syscalls" = 1 ] && ! command -v strace >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    note "installing strace"; apt-get install -y -qq strace >/dev/null 2>&1 || true
  fi
  command -v strace >/dev/null || { note "no strace: system calls not counted"; syscalls=0; }
fi

note "building (release)"
# The tools, then the generator: naming an example alone would build only it.
(cd "$repo" && cargo build --release -q -p reg-refs -p reg-orphans && cargo build --release -q -p reg-core --example gen_tree)
bin=${CARGO_TARGET_DIR:-$repo/target}/release
[ -d "$bin" ] || bin=$repo/target/release
gen=$bin/examples/gen_tree

start_work reg-bench

# ---- measuring -----------------------------------------------------------------
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

# cpu_children: user+sys seconds of every child this shell has waited for.
# (`times` must run in this shell: a subshell's counters start at zero.)
cpu_children() {
  times >"$work/times"
  # second line, children: "0m1.234s 0m0.567s"
  awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%.3f", n }' "$work/times"
}

# timed FILE CMD...: runs CMD under GNU time, writing "wall user sys maxrss_kb" to FILE.
timed() {
  local f=$1; shift
  if [ -n "$TIME" ]; then
    "$TIME" -f '%e %U %S %M' -o "$f" "$@"
  else
    "$@"
  fi
}
# part FILE: "wall cpu rss_kb" of one process measured by timed (last line; GNU
# time puts "Command exited with non-zero status" first).
part() { if [ -n "$TIME" ] && [ -s "$1" ]; then tail -1 "$1" | awk '{ printf "%s %.2f %s", $1, $2 + $3, $4 }'; else echo "na na na"; fi; }

# Result variables of the last measurement: WALL CPU RSS (KiB, "na" if unknown).
measure_find() {
  local root=$1 c0 t0 t1
  cpu_children >"$work/c0"; c0=$(cat "$work/c0"); t0=$(now)
  timed "$work/find.t" find "$root" -type f | timed "$work/wc.t" wc -l >"$work/find.out"
  t1=$(now)
  WALL=$(calc "$t1 - $t0")
  if [ -n "$TIME" ]; then
    read -r _ c1 r1 <<<"$(part "$work/find.t")"; read -r _ c2 r2 <<<"$(part "$work/wc.t")"
    CPU=$(calc "$c1 + $c2"); RSS=$((r1 + r2))
  else
    cpu_children >"$work/c1"; CPU=$(calc "$(cat "$work/c1") - $c0"); RSS=na
  fi
}

measure_ours() {
  local root=$1 c0 t0 t1 st
  cpu_children >"$work/c0"; c0=$(cat "$work/c0"); t0=$(now)
  set +e
  timed "$work/refs.t" "$bin/reg-refs" --tagged-only "$root" 2>"$work/refs.err" |
    timed "$work/orphans.t" "$bin/reg-orphans" "$root" >/dev/null 2>"$work/orphans.err"
  st=("${PIPESTATUS[@]}")
  set -e
  t1=$(now)
  if [ "${st[0]}" != 0 ] || [ "${st[1]}" != 0 ]; then
    note "our pipeline failed (${st[*]}):"; cat "$work/refs.err" "$work/orphans.err" >&2; exit 1
  fi
  WALL=$(calc "$t1 - $t0")
  if [ -n "$TIME" ]; then
    read -r REFS_WALL REFS_CPU REFS_RSS <<<"$(part "$work/refs.t")"
    read -r ORPH_WALL ORPH_CPU ORPH_RSS <<<"$(part "$work/orphans.t")"
    CPU=$(calc "$REFS_CPU + $ORPH_CPU"); RSS=$((REFS_RSS + ORPH_RSS))
  else
    cpu_children >"$work/c1"; CPU=$(calc "$(cat "$work/c1") - $c0"); RSS=na
    REFS_WALL=na REFS_CPU=na REFS_RSS=na ORPH_WALL=na ORPH_CPU=na ORPH_RSS=na
  fi
}

measure_registry() {
  local root=$1 c0 t0 t1 st
  registry_config "  filesystem:
    rootdirectory: \"$root\"" >"$work/config.yml"
  cpu_children >"$work/c0"; c0=$(cat "$work/c0"); t0=$(now)
  set +e
  timed "$work/gc.t" timeout "$gc_timeout" env -u REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY \
    docker-registry garbage-collect --dry-run --delete-untagged "$work/config.yml" \
    >"$work/gc.out" 2>"$work/gc.err"
  st=$?
  set -e
  t1=$(now)
  GC_STATUS=ok
  if [ "$st" = 124 ]; then
    GC_STATUS="exceeded ${gc_timeout}s"
  elif [ "$st" != 0 ]; then
    GC_STATUS="failed ($st)"; note "registry GC failed:"; tail -5 "$work/gc.err" >&2
  fi
  WALL=$(calc "$t1 - $t0")
  if [ -n "$TIME" ]; then read -r _ CPU RSS <<<"$(part "$work/gc.t")"; else cpu_children >"$work/c1"; CPU=$(calc "$(cat "$work/c1") - $c0"); RSS=na; fi
}

# ---- output --------------------------------------------------------------------
table=$work/table.md
sys_table=$work/syscalls.md; : >"$sys_table"
{
  echo "| blobs | many-tags repo tags | files | what | wall s | CPU s | peak RSS MiB | RSS bytes/blob | wall / find | wall / registry |"
  echo "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
} >"$table"
mib() { if [ "$1" = na ]; then echo na; else calc "$1 / 1024" 1; fi; }
per_blob() { if [ "$1" = na ]; then echo na; else calc "$1 * 1024 / $2" 0; fi; }
ratio() { if [ "$1" = na ] || [ "$2" = na ] || [ "$2" = 0 ]; then echo "-"; else awk "BEGIN { printf \"%.3g\", $1 / $2 }"; fi; }

# ---- the runs ------------------------------------------------------------------
mkdir -p "$base"
for n in "${blobs_list[@]}"; do
  for t in "${tags_list[@]}"; do
    tag_args=(); name="b$n-s$seed"
    if [ "$t" != default ]; then tag_args=(--many-tags "$t"); name="$name-t$t"; fi
    root=$base/$name
    stamp=$root/gen-tree.json
    # version 2: tag index entries are <hex>/link, as the registry writes them
    want="\"version\":2,\"blobs\":$n,\"seed\":$seed,"
    if [ -f "$stamp" ] && grep -q "$want" "$stamp" && { [ "$t" = default ] || grep -q "\"many_tags\":$t," "$stamp"; }; then
      note "reusing $root"
    else
      note "generating $root"
      "$gen" "$root" --blobs "$n" --seed "$seed" "${tag_args[@]}" --force >/dev/null
    fi
    stored=$(sed -n 's/.*"stats":{[^}]*"blobs":\([0-9]*\).*/\1/p' "$stamp")
    mtags=$(sed -n 's/.*"many_tags":\([0-9]*\).*/\1/p' "$stamp")

    if [ "$drop_caches" = 1 ]; then
      note "dropping caches"; sync; echo 3 >/proc/sys/vm/drop_caches
    fi
    note "$name: warming the page cache"
    find "$root" -type f | wc -l >/dev/null
    measure_ours "$root"

    best_find=; best_ours=
    for ((i = 0; i < runs; i++)); do
      measure_find "$root"
      if [ -z "$best_find" ] || awk "BEGIN { exit !($WALL < ${best_find%% *}) }"; then
        best_find="$WALL $CPU $RSS"; files=$(cat "$work/find.out")
      fi
      measure_ours "$root"
      if [ -z "$best_ours" ] || awk "BEGIN { exit !($WALL < ${best_ours%% *}) }"; then
        best_ours="$WALL $CPU $RSS $REFS_WALL $REFS_CPU $REFS_RSS $ORPH_WALL $ORPH_CPU $ORPH_RSS"
        tail -1 "$work/orphans.err" >"$work/orphans.summary"
      fi
    done
    read -r fw fc fr <<<"$best_find"
    read -r ow oc or rw rc rr pw pc pr <<<"$best_ours"
    note "$name: find ${fw}s, ours ${ow}s ($(cat "$work/orphans.summary"))"

    gw=na gc=na gr=na gs=skipped
    if [ "$registry" = 1 ]; then
      note "$name: registry garbage-collect (cap ${gc_timeout}s)"
      measure_registry "$root"
      gw=$WALL gc=$CPU gr=$RSS gs=$GC_STATUS
      note "$name: registry ${gw}s, $gs; $(grep -E 'blobs marked' "$work/gc.out" | tail -1 || true)"
    fi
    g_ratio=$gw; [ "$gs" = ok ] || g_ratio=na

    if [ "$syscalls" = 1 ]; then
      note "$name: counting system calls"
      "$bin/reg-refs" -q --tagged-only "$root" >"$work/refs.out"
      strace -f -c -o "$work/st-refs" "$bin/reg-refs" -q --tagged-only "$root" >/dev/null
      strace -f -c -o "$work/st-orphans" "$bin/reg-orphans" -q "$root" <"$work/refs.out" >/dev/null
      for tool in refs orphans; do
        f=$work/st-$tool
        calls() { awk -v want="$1" 'BEGIN { n = split(want, w, ","); for (i = 1; i <= n; i++) k[w[i]] = 1 } ($NF in k) { s += $4 } END { print s + 0 }' "$f"; }
        all=$(awk '$NF == "total" { print $4 }' "$f")
        echo "| $n | $files | reg-$tool | $all | $(calc "$all / $files" 2) | $(calls openat,openat2,open) | $(calls statx,newfstatat,fstat,lstat,stat) | $(calls read,pread64) | $(calls getdents64) |" >>"$sys_table"
      done
    fi

    row() { # what wall cpu rss
      echo "| $n | $mtags | $files | $1 | $2 | $3 | $(mib "$4") | $(per_blob "$4" "$stored") | $(ratio "$2" "$fw") | $(ratio "$2" "$g_ratio") |"
    }
    {
      row "find -type f \| wc -l" "$fw" "$fc" "$fr"
      row "**ours**: reg-refs --tagged-only \| reg-orphans" "$ow" "$oc" "$or"
      row "&nbsp;&nbsp;reg-refs part" "$rw" "$rc" "$rr"
      row "&nbsp;&nbsp;reg-orphans part" "$pw" "$pc" "$pr"
      if [ "$gs" = ok ]; then
        row "registry garbage-collect --dry-run --delete-untagged" "$gw" "$gc" "$gr"
      else
        row "registry garbage-collect --dry-run --delete-untagged ($gs)" "$gw" "$gc" "$gr"
      fi
    } >>"$table"
  done
done

if [ "$syscalls" = 1 ]; then
  {
    echo
    echo "System calls (strace -f -c), reg-refs --tagged-only and reg-orphans on its output:"
    echo
    echo "| blobs | files | tool | system calls | per stored file | open | stat | read | getdents64 |"
    echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    cat "$sys_table"
  } >>"$table"
fi

echo
echo "Stored blobs per tree: see gen-tree.json; machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; best of $runs runs for find and ours."
echo
cat "$table"
if [ -n "$out_file" ]; then
  { echo; echo "<!-- bench/run.sh $(date -u +%FT%TZ) -->"; cat "$table"; } >>"$out_file"
fi
