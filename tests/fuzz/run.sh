#!/bin/bash
# run.sh TARGET CORPUS OUTDIR SOURCE...: build tests/fuzz/TARGET.c with clang
# (libFuzzer, ASan, UBSan) together with the SOURCEs (meson passes libsigfs_src
# and whatever else TARGET needs, so the real code is linked, not a stand-in),
# then fuzz it for SIGFS_FUZZ_TIME seconds (30) from the seed corpus directory
# CORPUS (relative to tests/fuzz), with the dictionary NAME.dict for
# TARGET fuzz_NAME when there is one. Passes when libFuzzer finds nothing;
# prints how many inputs it ran.
#
# SIGFS_FUZZ_OBJ: a directory where the SOURCEs' objects are kept between
# runs and shared by every target (meson gives one per build; a lock makes
# concurrent runs wait for each other); an object is rebuilt when its source
# or a header it includes changed. Unset: OUTDIR/obj, for this target alone.
# SIGFS_FUZZ_RUNS: stop after that many executions instead of after
# SIGFS_FUZZ_TIME (tests/fuzz/long.sh).
# SIGFS_FUZZ_MAX_LEN: the largest input libFuzzer makes (16384).
set -euo pipefail
usage="usage: run.sh TARGET CORPUS OUTDIR SOURCE..."
target=${1:?$usage}
corpus=${2:?$usage}
out=${3:?$usage}
shift 3
src=${SIGFS_SRC:?set SIGFS_SRC to the source tree}
seconds=${SIGFS_FUZZ_TIME:-30}
max_len=${SIGFS_FUZZ_MAX_LEN:-16384}
obj=${SIGFS_FUZZ_OBJ:-$out/obj}

if ! command -v clang >/dev/null; then
	echo "fuzz: clang is not installed: install clang and libclang-rt-14-dev (bash scripts/deps)" >&2
	exit 1
fi
for pc in openssl jansson p11-kit-1 libcurl libarchive; do
	pkg-config --exists "$pc" || { echo "fuzz: pkg-config does not find $pc (bash scripts/deps)" >&2; exit 1; }
done

mkdir -p "$out/corpus" "$obj"
# The library is instrumented for coverage, not linked with libFuzzer's main.
cflags=(-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -std=gnu11 -D_GNU_SOURCE -DFUSE_USE_VERSION=314
	'-DSIGFS_VERSION="fuzz"' -I"$src" -I/usr/include/iniparser)
read -r -a pcflags <<<"$(pkg-config --cflags openssl jansson p11-kit-1)"
read -r -a pclibs <<<"$(pkg-config --libs openssl jansson libcurl libarchive)"
cflags+=("${pcflags[@]}")

# True when object $1 exists and is newer than every file its depfile $2 names.
fresh() {
	local dep
	[ -f "$1" ] && [ -f "$2" ] || return 1
	for dep in $(sed -e '1s/^[^:]*://' -e 's/\\$//' "$2"); do
		[ -f "$dep" ] && [ ! "$dep" -nt "$1" ] || return 1
	done
}

# Compile the SOURCEs into $obj, one clang per stale object, under the lock.
objs=()
pids=()
exec 9>"$obj/.lock"
flock 9
printf '%s\n' clang "$(clang --version | head -n 1)" "${cflags[@]}" >"$obj/.flags.new"
if ! cmp -s "$obj/.flags.new" "$obj/.flags"; then
	rm -f "$obj"/*.o "$obj"/*.d
fi
mv "$obj/.flags.new" "$obj/.flags"
for f in "$@"; do
	o=$obj/$(realpath -m --relative-to="$src" "$f" | tr / _).o
	objs+=("$o")
	if ! fresh "$o" "${o%.o}.d"; then
		clang "${cflags[@]}" -MMD -MF "${o%.o}.d" -c "$f" -o "$o" &
		pids+=($!)
	fi
done
clang "${cflags[@]}" -c "$src/tests/fuzz/$target.c" -o "$out/$target.o" &
pids+=($!)
for p in "${pids[@]}"; do
	wait "$p" || { echo "fuzz: compiling with clang failed (see above)" >&2; exit 1; }
done
flock -u 9
clang -fsanitize=fuzzer,address,undefined "${objs[@]}" "$out/$target.o" -o "$out/$target" \
	"${pclibs[@]}" -liniparser -lpthread -ldl

dict=$src/tests/fuzz/${target#fuzz_}.dict
dictopt=()
if [ -f "$dict" ]; then
	dictopt=(-dict="$dict")
fi
if [ -n "${SIGFS_FUZZ_RUNS:-}" ]; then
	limit=(-runs="$SIGFS_FUZZ_RUNS" -max_total_time=0)
	what="$SIGFS_FUZZ_RUNS runs"
else
	limit=(-max_total_time="$seconds")
	what="${seconds}s"
fi
# New inputs go to $out/corpus; the seeds in the source tree are only read.
"$out/$target" "${limit[@]}" -max_len="$max_len" -timeout=10 \
	-rss_limit_mb=2048 -print_final_stats=1 "${dictopt[@]}" \
	-artifact_prefix="$out/" "$out/corpus" "$src/tests/fuzz/$corpus" 2>&1 |
	tee "$out/fuzz.log" | grep -E "^(INFO: Seed|#[0-9]+ +DONE|Done|stat::number_of_executed_units)|ERROR|SUMMARY|crash-|leak-|timeout-" || true
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
	echo "fuzz: libFuzzer found a problem (exit $rc); the input is in $out/ (crash-*, leak-*, timeout-*)" >&2
	tail -n 60 "$out/fuzz.log" >&2
	exit 1
fi
grep -q "^Done [0-9]* runs" "$out/fuzz.log" || { echo "fuzz: libFuzzer did not finish" >&2; exit 1; }
echo "fuzz: no finding in $what: $(grep -o '^Done [0-9]* runs.*' "$out/fuzz.log")"
