#!/bin/bash
# bench/backends.sh [BUILD_DIR]: signatures per second through the mount, per
# backend, next to the backend's own rate measured in the same run (issue 4):
#
#  (c) pkcs11 on SoftHSM2, rsa-2048 PSS and ecdsa-p256: files/s through the
#      mount with W workers vs bench/p11_sign_loop (C_Sign in a loop, in
#      process) with W threads. Aim: >= 0.80.
#  (d) nethsm against tests/nethsm/server.py with 20 ms added latency,
#      ecdsa-p256: the mount with 8 workers vs the mount with 1 worker
#      (aim: >= 6), and the mount with 8 workers vs bench/backend_loop with
#      8 threads, i.e. the backend's client code without FUSE and the engine
#      (aim: >= 0.80).
#  (e) appliance, rsa-4096 PSS, sigfs-appliance --engines 1 (one signing
#      engine, like the default SEGGER-like board) on 127.0.0.2 and 127.0.0.3:
#      the mount with two appliances (4 workers each) vs one (aim: >= 1.7), and
#      the mount vs backend_loop against the same appliances (aim: >= 0.80).
#
# Every figure is the median of REPEAT runs, mount and baseline runs
# interleaved; see bench/README.md. Run as root (FUSE mounts). It uses what is
# built in BUILD_DIR (default: build/ of this tree): sigfsd, sigfs-appliance,
# bench/smallfiles, bench/p11_sign_loop, bench/backend_loop. bench/run.sh
# calls it with its own build directory.
#
# Environment (all optional):
#   BENCH_BACKEND_SECONDS  length of each run (default 5)
#   BENCH_REPEAT           repetitions per figure (default 3)
#   BENCH_BASE             parent directory of the temporary work dir (default /var/lib)
#   BENCH_FIGURES          which figures to run (default "c d e")
set -euo pipefail
BENCH_NAME=backends
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
SECS=${BENCH_BACKEND_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-3}
FIGURES=${BENCH_FIGURES:-c d e}
NCPU=$(nproc)
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
LATENCY_MS=20

SIGFSD=$BUILD/sigfsd
APPLIANCE=$BUILD/sigfs-appliance
SMALLFILES=$BUILD/bench/smallfiles
P11_LOOP=$BUILD/bench/p11_sign_loop
BACKEND_LOOP=$BUILD/bench/backend_loop

want() { case " $FIGURES " in *" $1 "*) true ;; *) false ;; esac; }

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mounts, secret files owned by root)"
[ -e /dev/fuse ] || die "/dev/fuse is missing"
for tool in fusermount3 mountpoint awk; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
for bin in "$SIGFSD" "$SMALLFILES" "$P11_LOOP" "$BACKEND_LOOP"; do
	[ -x "$bin" ] || die "$bin is missing; build first (ninja -C $BUILD)"
done
if want c; then
	[ -e "$SOFTHSM" ] && command -v softhsm2-util >/dev/null ||
		die "(c) needs SoftHSM2 ($SOFTHSM, softhsm2-util); or set BENCH_FIGURES"
fi
if want e; then
	[ -x "$APPLIANCE" ] || die "(e) needs $APPLIANCE; build it, or set BENCH_FIGURES=\"c d\""
fi

# --- work dir, processes, cleanup ----------------------------------------------------
bench_workdir sigfs-bench-backends
NH_PID=
APP_PIDS=()

cleanup() {
	local rc=$? pid
	stop_sigfs
	stop_pid "$NH_PID"
	for pid in "${APP_PIDS[@]}"; do
		stop_pid "$pid"
	done
	bench_finish $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# write_conf WORKERS ALGORITHM [LINE...]: sigfsd's config, the settings that decide
# the figures spelled out; the LINEs add [backend ...] sections.
write_conf() {
	local workers=$1 alg=$2
	shift 2
	{
		cat <<EOF
; sigfs benchmark configuration (bench/backends.sh)
[sigfs]
workers = $workers
wait_on_close = yes
fsync = no
[keys]
algorithm = $alg
digest = sha256
format = raw
rsa_padding = pss
EOF
		printf '%s\n' "$@"
	} >"$CONF"
}

# --- measuring --------------------------------------------------------------------------
# mount_rate KEY THREADS TAG: files/s of SECS of 1 KiB files into KEY's inbox.
# Files are kept (-k): deleting makes the next run measure the inode allocator.
mount_rate() {
	local out
	out=$("$SMALLFILES" -q -k -t "$2" -d "$SECS" -s 1024 -p "$3" "$MNT/$1") ||
		die "smallfiles into $1 failed: $out"
	echo "  mount $1 ($2 client threads) $3: $out" >&2
	files_per_s <<<"$out"
}

# loop_rate DESCRIPTION COMMAND...: the signatures/s a baseline tool prints.
loop_rate() {
	local desc=$1 out
	shift
	out=$("$@") || die "$desc failed: $out"
	echo "  $desc: $(tr '\n' ' ' <<<"$out")" >&2
	awk '/^signatures\/s:/ {print $2}' <<<"$out"
}

warm_up() { # KEY THREADS
	"$SMALLFILES" -q -k -t "$2" -d 1 -s 1024 -p warm "$MNT/$1" >/dev/null ||
		die "warm-up of $1 failed: signing through the mount does not work"
}

RESULTS=()
# figure NAME "MOUNT RUNS" "BASELINE RUNS" AIM: one line of the result table.
figure() {
	local name=$1 m b r v
	m=$(tr ' ' '\n' <<<"$2" | median)
	b=$(tr ' ' '\n' <<<"$3" | median)
	r=$(ratio "$m" "$b")
	v=$(awk -v r="$r" -v a="$4" 'BEGIN {print (r >= a) ? "met" : "MISSED"}')
	RESULTS+=("$name: mount $m/s, baseline $b/s, ratio $r, aim ≥$4: $v")
	RESULTS+=("    runs: mount [${2// /, }], baseline [${3// /, }]")
	echo "${RESULTS[-2]}"
}
NOTES=()

# Idle share of the CPUs over one second, from /proc/stat.
idle_pct() {
	local a b
	a=$(awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN {split(a, x, " "); split(b, y, " ");
		printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2])}'
}

echo "== backend benchmarks (bench/backends.sh)"
echo "date:     $(date -u +%Y-%m-%dT%H:%MZ)"
echo "host:     $(uname -n), kernel $(uname -r), $NCPU CPUs, $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "build:    $BUILD ($("$SIGFSD" --version 2>/dev/null || echo sigfsd))"
echo "work dir: $W ($(findmnt -n -o FSTYPE,SOURCE -T "$W" | tr -s ' '))"
echo "runs:     $SECS s each, median of $REPEAT, 1 KiB files, client threads = 2 x workers"
IDLE=$(idle_pct)
echo "load:     loadavg $(cut -d' ' -f1-3 /proc/loadavg), CPUs $IDLE% idle over 1 s before the start$(
	[ "$IDLE" -ge 90 ] || echo " (BUSY: other work shares the CPUs, the figures are noisy)")"

# --- (c) pkcs11 on SoftHSM2 ------------------------------------------------------------
if want c; then
	echo
	echo "== (c) pkcs11 on SoftHSM2: mount vs C_Sign in a loop, $NCPU workers / threads"
	softhsm_token "$W" sigfs-bench 4321
	write_conf "$NCPU" ecdsa-p256 "[backend hsm]" "type = pkcs11" "module = $SOFTHSM" \
		"token_label = sigfs-bench" "pin_file = $W/pin"
	start_sigfs
	mkdir "$MNT/.ctl/keys/p11-ec@hsm" "$MNT/.ctl/keys/p11-rsa@hsm"
	echo rsa-2048 >"$MNT/.ctl/keys/p11-rsa/algorithm"
	T=$((2 * NCPU))
	declare -A M B
	for key in p11-rsa p11-ec; do
		warm_up "$key" "$T"
		M[$key]= B[$key]=
	done
	refs=
	for i in $(seq 1 "$REPEAT"); do
		for key in p11-rsa p11-ec; do
			M[$key]+=" $(mount_rate "$key" "$T" "r$i")"
			B[$key]+=" $(loop_rate "p11_sign_loop $key $NCPU threads" \
				"$P11_LOOP" -m "$SOFTHSM" -l sigfs-bench -p "$W/pin" -k "$key" \
				-t "$NCPU" -d "$SECS")"
		done
		# Reference: the same load under names the signer ignores (".ref*"):
		# every FUSE round trip and no signing, the ceiling of any backend here.
		# smallfiles fails on the missing signatures, so its status is ignored.
		r=$("$SMALLFILES" -q -k -t "$T" -d "$SECS" -s 1024 -p ".ref$i" "$MNT/p11-ec" 2>/dev/null |
			files_per_s || true)
		echo "  mount without signing (.ref names) r$i: ${r:=0} files/s" >&2
		refs+=" $r"
	done
	ref=$(tr ' ' '\n' <<<"${refs# }" | median)
	stop_sigfs
	for pair in p11-rsa:rsa-2048 p11-ec:ecdsa-p256; do
		key=${pair%%:*} alg=${pair#*:}
		label="rsa-2048 PSS"
		[ "$alg" = rsa-2048 ] || label=$alg
		figure "(c) pkcs11 SoftHSM2 $label, $NCPU workers vs C_Sign loop $NCPU threads" \
			"${M[$key]# }" "${B[$key]# }" 0.80
		# SoftHSM2 signs on the same CPUs as the FUSE path: if the two costs just
		# add up, the mount reaches at most 1 / (1/baseline + 1/ref).
		b=$(tr ' ' '\n' <<<"${B[$key]# }" | median)
		bl=$(loop_rate "backend_loop pkcs11 $key $NCPU threads" "$BACKEND_LOOP" -b pkcs11 \
			-k "$key" -a "$alg" -t "$NCPU" -d "$SECS" "module=$SOFTHSM" \
			token_label=sigfs-bench "pin_file=$W/pin")
		NOTES+=("(ref) $label: the backend's code alone (backend_loop, $NCPU threads) $bl/s; if FUSE and signing share the $NCPU CPUs, the mount can reach at most $(awk -v b="$b" -v f="$ref" 'BEGIN {if (b > 0 && f > 0) printf "%.0f/s, ratio %.2f", 1 / (1 / b + 1 / f), (1 / (1 / b + 1 / f)) / b; else print "?"}')")
		echo "${NOTES[-1]}"
	done
	NOTES+=("(ref) the mount without signing (ignored .names, $T threads): $ref files/s [${refs# }]: no backend does better through FUSE here")
	echo "${NOTES[-1]}"
fi

# --- (d) nethsm, 20 ms added latency ---------------------------------------------------
if want d; then
	echo
	echo "== (d) nethsm: tests/nethsm/server.py --latency-ms $LATENCY_MS, ecdsa-p256"
	OPW=bench-op-2291
	APW=bench-admin-5517
	run_nethsm "$W" 0 --latency-ms "$LATENCY_MS" \
		--user "bench~op:Operator:$OPW" --user "bench~admin:Administrator:$APW" ||
		die "the NetHSM test server did not start: $(tail -n 5 "$W/nethsm.log")"
	PORT=$NH_PORT
	install -m 0600 /dev/null "$W/op.pw"
	install -m 0600 /dev/null "$W/admin.pw"
	echo "$OPW" >"$W/op.pw"
	echo "$APW" >"$W/admin.pw"
	NH_SETTINGS=("url=https://127.0.0.1:$PORT" "user=bench~op" "password_file=$W/op.pw"
		"admin_user=bench~admin" "admin_password_file=$W/admin.pw"
		"ca_file=$W/nethsm/cert.pem")
	nh_conf() { # WORKERS
		write_conf "$1" ecdsa-p256 "[backend nh]" "type = nethsm" "${NH_SETTINGS[@]/=/ = }"
	}
	nh_conf 1
	start_sigfs
	mkdir "$MNT/.ctl/keys/nh-ec@nh"
	warm_up nh-ec 2
	stop_sigfs
	m1= m8= l8= l1=
	for i in $(seq 1 "$REPEAT"); do
		nh_conf 1
		start_sigfs
		m1+=" $(mount_rate nh-ec 2 "w1-r$i")"
		stop_sigfs
		nh_conf 8
		start_sigfs
		m8+=" $(mount_rate nh-ec 16 "w8-r$i")"
		stop_sigfs
		l8+=" $(loop_rate "backend_loop nethsm 8 threads" "$BACKEND_LOOP" -b nethsm -k nh-ec \
			-a ecdsa-p256 -t 8 -d "$SECS" "${NH_SETTINGS[@]}")"
		l1+=" $(loop_rate "backend_loop nethsm 1 thread" "$BACKEND_LOOP" -b nethsm -k nh-ec \
			-a ecdsa-p256 -t 1 -d "$SECS" "${NH_SETTINGS[@]}")"
	done
	figure "(d) nethsm ${LATENCY_MS} ms, mount 8 workers vs mount 1 worker" "${m8# }" "${m1# }" 6
	figure "(d) nethsm ${LATENCY_MS} ms, mount 8 workers vs backend_loop 8 threads" \
		"${m8# }" "${l8# }" 0.80
	l1m=$(tr ' ' '\n' <<<"${l1# }" | median)
	l8m=$(tr ' ' '\n' <<<"${l8# }" | median)
	NOTES+=("(ref) nethsm backend_loop 1 thread: $l1m signatures/s = $(awk -v r="$l1m" 'BEGIN {printf "%.1f", 1000 / r}') ms per signature (the server adds $LATENCY_MS ms); backend_loop 8 vs 1 thread: $(ratio "$l8m" "$l1m") (what the server allows)")
	echo "${NOTES[-1]}"
	stop_pid "$NH_PID"
	NH_PID=
fi

# --- (e) appliance --------------------------------------------------------------------
if want e; then
	echo
	echo "== (e) appliance: sigfs-appliance --engines 1 on 127.0.0.2 and 127.0.0.3, rsa-4096 PSS"
	# One port free on both addresses (the kernel picks it; both listen on it).
	APORT=$(port_free_on_both 127.0.0.2 127.0.0.3)
	[ -n "$APORT" ] || die "no TCP port free on both 127.0.0.2 and 127.0.0.3"
	SECRET=$(openssl rand -hex 32)
	install -m 0600 /dev/null "$W/clients"
	install -m 0600 /dev/null "$W/app.secret"
	echo "bench $SECRET sign,manage" >"$W/clients"
	echo "$SECRET" >"$W/app.secret"
	for host in 127.0.0.2 127.0.0.3; do
		mkdir -m 0700 "$W/store-$host"
		"$APPLIANCE" --listen "$host:$APORT" --store "$W/store-$host" --clients "$W/clients" \
			--engines 1 >"$W/appliance-$host.log" 2>&1 &
		APP_PIDS+=($!)
	done
	for host in 127.0.0.2 127.0.0.3; do
		for _ in $(seq 1 100); do
			ss -Hltn "src $host:$APORT" | grep -q . && break
			sleep 0.1
		done
		ss -Hltn "src $host:$APORT" | grep -q . ||
			die "sigfs-appliance on $host:$APORT did not start: $(tail -n 5 "$W/appliance-$host.log")"
	done
	ONE=127.0.0.2:$APORT
	TWO="127.0.0.2:$APORT, 127.0.0.3:$APORT"
	app_conf() { # WORKERS APPLIANCES
		write_conf "$1" rsa-4096 "[backend app]" "type = appliance" "appliances = $2" \
			"client = bench" "secret_file = $W/app.secret"
	}
	app_loop() { # THREADS APPLIANCES
		loop_rate "backend_loop appliance $1 threads ($2)" "$BACKEND_LOOP" -b appliance \
			-k app-rsa -a rsa-4096 -t "$1" -d "$SECS" "appliances=$2" client=bench \
			"secret_file=$W/app.secret"
	}
	# With several appliances sigfsd makes the key and loads it into each, so
	# both hold it and the one-appliance runs use the same key.
	app_conf 8 "$TWO"
	start_sigfs
	mkdir "$MNT/.ctl/keys/app-rsa@app"
	warm_up app-rsa 16
	stop_sigfs
	m1= m2= l1= l2=
	for i in $(seq 1 "$REPEAT"); do
		app_conf 4 "$ONE"
		start_sigfs
		m1+=" $(mount_rate app-rsa 8 "a1-r$i")"
		stop_sigfs
		app_conf 8 "$TWO"
		start_sigfs
		m2+=" $(mount_rate app-rsa 16 "a2-r$i")"
		stop_sigfs
		l1+=" $(app_loop 4 "$ONE")"
		l2+=" $(app_loop 8 "$TWO")"
	done
	figure "(e) appliance rsa-4096, mount 2 appliances (8 workers) vs 1 appliance (4 workers)" \
		"${m2# }" "${m1# }" 1.7
	figure "(e) appliance rsa-4096, mount 2 appliances vs backend_loop 8 threads" \
		"${m2# }" "${l2# }" 0.80
	figure "(e) appliance rsa-4096, mount 1 appliance vs backend_loop 4 threads" \
		"${m1# }" "${l1# }" 0.80
	NOTES+=("(ref) appliance backend_loop 2 vs 1 appliance: $(ratio "$(tr ' ' '\n' <<<"${l2# }" | median)" "$(tr ' ' '\n' <<<"${l1# }" | median)") (what $NCPU CPUs allow two one-engine appliances; openssl speed rsa4096 signs $(openssl speed -seconds 2 rsa4096 2>/dev/null | awk '/^rsa 4096/ {print $(NF-1)}')/s on one core)")
	echo "${NOTES[-1]}"
	for pid in "${APP_PIDS[@]}"; do
		stop_pid "$pid"
	done
	APP_PIDS=()
fi

echo
echo "== backend results (median of $REPEAT runs of $SECS s)"
printf '%s\n' "${RESULTS[@]}"
printf '%s\n' "${NOTES[@]}"
echo "load at the end: loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
