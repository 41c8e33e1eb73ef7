#!/bin/bash
# run.sh TARGET CORPUS OUTDIR SOURCE...: build tests/fuzz/TARGET.c with clang
# (libFuzzer, ASan, UBSan) together with the SOURCEs (meson passes libsigfs_src
# and whatever else TARGET needs, so the real code is linked, not a stand-in),
# then fuzz it for SIGFS_FUZZ_TIME seconds (30) from the seed corpus directory
# CORPUS (relative to tests/fuzz), with the dictionary NAME.dict for
# TARGET fuzz_NAME when there is one. Passes when libFuzzer finds nothing;
# prints how many inputs it ran.
set -euo pipefail
usage="usage: run.sh TARGET CORPUS OUTDIR SOURCE..."
target=${1:?$usage}
corpus=${2:?$usage}
out=${3:?$usage}
shift 3
src=${SIGFS_SRC:?set SIGFS_SRC to the source tree}
seconds=${SIGFS_FUZZ_TIME:-30}

if ! command -v clang >/dev/null; then
	echo "fuzz: clang is not installed: install clang and libclang-rt-14-dev (bash scripts/deps)" >&2
	exit 1
fi
for pc in openssl jansson p11-kit-1 libcurl; do
	pkg-config --exists "$pc" || { echo "fuzz: pkg-config does not find $pc (bash scripts/deps)" >&2; exit 1; }
done

mkdir -p "$out/obj" "$out/corpus"
rm -f "$out"/obj/*.o
# The library is instrumented for coverage, not linked with libFuzzer's main.
cflags=(-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -std=gnu11 -D_GNU_SOURCE -DFUSE_USE_VERSION=314
	'-DSIGFS_VERSION="fuzz"' -I"$src" -I/usr/include/iniparser)
read -r -a pcflags <<<"$(pkg-config --cflags openssl jansson p11-kit-1)"
read -r -a pclibs <<<"$(pkg-config --libs openssl jansson libcurl)"
cflags+=("${pcflags[@]}")

pids=()
for f in "$@" "$src/tests/fuzz/$target.c"; do
	o=$(realpath -m --relative-to="$src" "$f")
	clang "${cflags[@]}" -c "$f" -o "$out/obj/${o//\//_}.o" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || { echo "fuzz: compiling with clang failed (see above)" >&2; exit 1; }
done
clang -fsanitize=fuzzer,address,undefined "$out"/obj/*.o -o "$out/$target" \
	"${pclibs[@]}" -liniparser -lpthread -ldl

dict=$src/tests/fuzz/${target#fuzz_}.dict
dictopt=()
if [ -f "$dict" ]; then
	dictopt=(-dict="$dict")
fi
# New inputs go to $out/corpus; the seeds in the source tree are only read.
"$out/$target" -max_total_time="$seconds" -max_len=16384 -timeout=10 \
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
echo "fuzz: no finding in ${seconds}s: $(grep -o '^Done [0-9]* runs' "$out/fuzz.log")"
