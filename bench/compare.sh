#!/usr/bin/env bash
# compare.sh: runs reg-ls, reg-refs, reg-orphans and reg-rm --dry-run of two
# builds on the same trees and diffs what they say: stdout (records), stderr
# (messages) and exit statuses. For refactorings that must change none of
# them (issue 19).
#
#   cargo build --release --target-dir /tmp/base            # at the old commit
#   cargo build --release -p reg-core --example gen_tree --target-dir /tmp/base
#   cargo build --release                                   # at the new one
#   bench/compare.sh /tmp/base/release target/release
#
# Options:
#   --blobs N     the generated tree's size (default 13000; 0: the sample only)
#   --dir BASE    where the generated tree lives (default /tmp/bench-trees),
#                 reused when its gen-tree.json matches
#   --out DIR     keep each case's outputs there (default: a temporary dir)
#
# The trees: an aged copy of examples/registry (the README's first command)
# and a tree written by reg-core's gen_tree example (from OLD's build). Every
# case runs once with each build; reg-orphans and reg-rm read the OLD build's
# upstream output, so a case differs only by the tool under test. Nothing is
# deleted: reg-rm runs with --dry-run only. Prints one line a case that
# differs, then a count; exits 1 when any differs.
set -uo pipefail

usage() { sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; }
old= new= blobs=13000 base=/tmp/bench-trees out=
while [ $# -gt 0 ]; do
  case $1 in
    --blobs) blobs=$2; shift 2 ;;
    --dir) base=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    *) if [ -z "$old" ]; then old=$1; elif [ -z "$new" ]; then new=$1; else echo "compare.sh: too many arguments" >&2; exit 2; fi; shift ;;
  esac
done
[ -n "$old" ] && [ -n "$new" ] || { usage >&2; exit 2; }
old=$(cd "$old" && pwd) new=$(cd "$new" && pwd)
for b in "$old" "$new"; do
  for t in reg-ls reg-refs reg-orphans reg-rm; do
    [ -x "$b/$t" ] || { echo "compare.sh: no $b/$t" >&2; exit 2; }
  done
done
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$out" ]; then
  out=$(mktemp -d "${TMPDIR:-/tmp}/reg-compare.XXXXXX")
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

# ---- the trees ---------------------------------------------------------------------
sample=$out/sample/registry
rm -rf "$out/sample"; mkdir -p "$out/sample"
cp -a "$repo/examples/registry" "$sample"
find "$sample" -exec touch -h -d '100 days ago' {} +
trees=("sample:$sample")
if [ "$blobs" != 0 ]; then
  gen=$old/examples/gen_tree
  [ -x "$gen" ] || { echo "compare.sh: no $gen (cargo build --release -p reg-core --example gen_tree)" >&2; exit 2; }
  root=$base/compare-b$blobs-s1
  if ! grep -q "\"blobs\":$blobs,\"seed\":1," "$root/gen-tree.json" 2>/dev/null; then
    echo "compare.sh: generating $root" >&2
    mkdir -p "$base"
    "$gen" "$root" --blobs "$blobs" --seed 1 --force >/dev/null || exit 1
  fi
  trees+=("bench:$root")
fi

# ---- running -------------------------------------------------------------------------
differ=0 cases=0
# run NAME STDIN TOOL ARGS...: runs TOOL from both builds (stdin from the
# file STDIN, or /dev/null), keeps out/NAME.{old,new}.{out,err,status}.
run() {
  local name=$1 input=$2 tool=$3; shift 3
  local side bin
  for side in old new; do
    if [ "$side" = old ]; then bin=$old; else bin=$new; fi
    # No terminal, no colour, no clock offsets: the same stderr every time.
    env -u REG_TEST_CLOCK_OFFSET -u REG_TEST_PROGRESS_HOLD -u REG_RM_FAIL_AFTER NO_COLOR=1 \
      "$bin/$tool" "$@" <"${input:-/dev/null}" >"$out/$name.$side.out" 2>"$out/$name.$side.err"
    echo $? >"$out/$name.$side.status"
    # The tool's path is in clap's usage lines.
    sed -i "s#$bin/##g" "$out/$name.$side.err"
  done
  cases=$((cases + 1))
  local what=()
  cmp -s "$out/$name.old.out" "$out/$name.new.out" || what+=(records)
  cmp -s "$out/$name.old.err" "$out/$name.new.err" || what+=(messages)
  cmp -s "$out/$name.old.status" "$out/$name.new.status" || what+=("status $(cat "$out/$name.old.status")->$(cat "$out/$name.new.status")")
  if [ ${#what[@]} -gt 0 ]; then
    differ=$((differ + 1))
    echo "DIFFERS $name: ${what[*]} ($tool $*)"
    diff "$out/$name.old.err" "$out/$name.new.err" | head -5 | sed 's/^/    /'
    diff "$out/$name.old.out" "$out/$name.new.out" | head -5 | sed 's/^/    /'
  fi
}

# text FILE LINE...: writes the lines to FILE (bad inputs).
text() { local f=$1; shift; printf '%s\n' "$@" >"$f"; }

for t in "${trees[@]}"; do
  tn=${t%%:*} root=${t#*:}
  in=$out/$tn.input; mkdir -p "$in"
  repo1=$("$old/reg-ls" "$root" --kind repo --tsv | head -1 | cut -f2)

  # reg-ls
  run "$tn-ls" "" reg-ls "$root"
  run "$tn-ls-tsv" "" reg-ls "$root" --tsv --header
  run "$tn-ls-stats" "" reg-ls "$root" --stats -j 2
  run "$tn-ls-kinds" "" reg-ls "$root" --kind tag --kind layer-link --kind upload --tsv
  run "$tn-ls-repo" "" reg-ls "$root" --repo "$repo1" --stats
  run "$tn-ls-repo-blob" "" reg-ls "$root" --repo "$repo1" --kind blob --kind revision
  run "$tn-ls-verify" "" reg-ls "$root" --verify --kind blob --stats
  run "$tn-ls-quiet" "" reg-ls "$root" -q --kind repo
  run "$tn-ls-badrepo" "" reg-ls "$root" --repo Upper
  run "$tn-ls-norepo" "" reg-ls "$root" --repo no/such/repo --stats
  run "$tn-ls-badkind" "" reg-ls "$root" --kind bogus
  run "$tn-ls-threads0" "" reg-ls "$root" -j 0
  run "$tn-ls-header-only" "" reg-ls "$root" --header
  run "$tn-ls-noroot" "" reg-ls "$root/no-such-dir"

  # reg-refs
  run "$tn-refs" "" reg-refs "$root" --stats
  run "$tn-refs-tagged" "" reg-refs "$root" --tagged-only --stats
  run "$tn-refs-tsv" "" reg-refs "$root" --tagged-only --tsv --header
  run "$tn-refs-recent" "" reg-refs "$root" --tagged-only --keep-recent 200d
  run "$tn-refs-repo" "" reg-refs "$root" --repo "$repo1" --stats
  run "$tn-refs-exclude" "" reg-refs "$root" --exclude-repo "$repo1" --stats
  run "$tn-refs-badrepo" "" reg-refs "$root" --repo 'bad//name'
  run "$tn-refs-baddur" "" reg-refs "$root" --keep-recent 5x
  run "$tn-refs-noroot" "" reg-refs /no/such/root

  # reg-orphans, on the old build's reg-refs output
  "$old/reg-refs" "$root" >"$in/refs" 2>/dev/null
  "$old/reg-refs" "$root" --tagged-only >"$in/refs-tagged" 2>/dev/null
  "$old/reg-refs" "$root" --repo "$repo1" >"$in/refs-repo" 2>/dev/null
  "$old/reg-refs" "$root" --exclude-repo "$repo1" >"$in/refs-exclude" 2>/dev/null
  head -n -1 "$in/refs" >"$in/refs-cut"
  { head -3 "$in/refs"; echo '{"kind":"ref","this is not":"a record"'; tail -1 "$in/refs"; } >"$in/refs-bad"
  { head -3 "$in/refs"; echo 'not json'; tail -1 "$in/refs"; } >"$in/refs-garbage"
  run "$tn-orphans" "$in/refs" reg-orphans "$root" --stats
  run "$tn-orphans-tagged" "$in/refs-tagged" reg-orphans "$root" --stats
  run "$tn-orphans-tsv" "$in/refs-tagged" reg-orphans "$root" --tsv --header
  run "$tn-orphans-minage" "$in/refs-tagged" reg-orphans "$root" --min-age 0s --upload-age 1h --stats
  run "$tn-orphans-young" "$in/refs-tagged" reg-orphans "$root" --min-age 1000d --stats
  run "$tn-orphans-repo" "$in/refs-repo" reg-orphans "$root" --stats
  run "$tn-orphans-exclude" "$in/refs-exclude" reg-orphans "$root" --stats
  run "$tn-orphans-cut" "$in/refs-cut" reg-orphans "$root"
  run "$tn-orphans-bad" "$in/refs-bad" reg-orphans "$root"
  run "$tn-orphans-garbage" "$in/refs-garbage" reg-orphans "$root"
  printf '\xff\xfe\n' >"$in/not-utf8"
  run "$tn-orphans-empty" "" reg-orphans "$root"
  run "$tn-orphans-utf8" "$in/not-utf8" reg-orphans "$root"
  run "$tn-orphans-baddur" "$in/refs" reg-orphans "$root" --min-age nope

  # reg-rm --dry-run, on the old build's reg-orphans and reg-ls output
  "$old/reg-orphans" "$root" <"$in/refs-tagged" >"$in/orphans" 2>/dev/null
  "$old/reg-orphans" "$root" <"$in/refs" >"$in/orphans-all" 2>/dev/null
  "$old/reg-ls" "$root" --kind tag >"$in/tags"
  "$old/reg-ls" "$root" --kind blob --kind revision >"$in/stored"
  grep -o '"digest":"sha256:[0-9a-f]*"' "$in/orphans" | cut -d'"' -f4 | head -50 >"$in/digests"
  head -n 3 "$in/orphans" >"$in/orphans-cut"
  { head -2 "$in/orphans"; echo '{"kind":"layer","repo":"a","digest":"sha256:00"}'; echo '  '; echo 'sha256:zz'; } >"$in/rm-bad"
  text "$in/rm-repo" "{\"kind\":\"repo\",\"repo\":\"$repo1\"}"
  run "$tn-rm" "$in/orphans" reg-rm "$root" --dry-run
  run "$tn-rm-all" "$in/orphans-all" reg-rm "$root" --dry-run --tsv --header
  run "$tn-rm-minage" "$in/orphans" reg-rm "$root" --dry-run --min-age 0s
  run "$tn-rm-young" "$in/orphans" reg-rm "$root" --dry-run --min-age 1000d -q
  run "$tn-rm-untag" "$in/tags" reg-rm "$root" --dry-run --untag
  run "$tn-rm-notuntag" "$in/tags" reg-rm "$root" --dry-run
  run "$tn-rm-stored" "$in/stored" reg-rm "$root" --dry-run
  run "$tn-rm-stored-broken" "$in/stored" reg-rm "$root" --dry-run --accept-broken
  run "$tn-rm-digests" "$in/digests" reg-rm "$root" --dry-run
  run "$tn-rm-repo" "$in/rm-repo" reg-rm "$root" --dry-run
  run "$tn-rm-cut" "$in/orphans-cut" reg-rm "$root" --dry-run
  run "$tn-rm-bad" "$in/rm-bad" reg-rm "$root" --dry-run
  run "$tn-rm-empty" "" reg-rm "$root" --dry-run
  run "$tn-rm-utf8" "$in/not-utf8" reg-rm "$root" --dry-run
  run "$tn-rm-trash-dry" "$in/orphans" reg-rm "$root" --dry-run --trash /nonexistent/trash
  run "$tn-rm-badflag" "$in/orphans" reg-rm "$root" --dry-run --min-age x
  run "$tn-rm-noroot" "$in/orphans" reg-rm /no/such/root --dry-run
done

echo "$differ of $cases cases differ (records, messages, exit statuses)"
[ "$differ" = 0 ]
