#!/bin/bash
# layers.sh: the include graph of the production code flows one way
# (docs/architecture.md). Every `#include "DIR/..."` in a folder's .c and .h
# files must name the folder itself or one it may use:
#
#   common/     nothing else (buffers, errors, algorithms, settings, secrets)
#   protocol/   common/ (the appliance wire protocol: backend and daemon)
#   backends/   common/ protocol/
#   signer/     common/ backends/
#   fs/         common/ signer/          (fs/ never calls a backend)
#   spool/      common/ signer/          (spool mode; fs/ and spool/ never include each other)
#   daemon/     common/ signer/ fs/ spool/   (sigfsd's main: runs the mount, the spool or both)
#   client/     common/ signer/
#   appliance/  common/ protocol/        (the daemon: no backend, no signer)
#
# A folder not in the table fails, so a new one must be placed first.
# Prints every include that goes the wrong way and fails if there is one.
set -euo pipefail
cd "${SIGFS_SRC:-$(dirname "$0")/../..}"

declare -A may=(
	[common]=""
	[protocol]="common"
	[backends]="common protocol"
	[signer]="common backends"
	[fs]="common signer"
	[spool]="common signer"
	[daemon]="common signer fs spool"
	[client]="common signer"
	[appliance]="common protocol"
)

bad=0
files=0
while IFS= read -r f; do
	dir=${f%%/*}
	files=$((files + 1))
	if [[ ! -v may[$dir] ]]; then
		echo "layers: $f: folder $dir/ has no place in the layer table of $0"
		bad=$((bad + 1))
		continue
	fi
	while IFS= read -r inc; do
		to=${inc%%/*}
		[ "$to" = "$dir" ] && continue
		if [[ " ${may[$dir]} " != *" $to "* ]]; then
			echo "layers: $f includes \"$inc\": $dir/ may use only: ${may[$dir]:-nothing}"
			bad=$((bad + 1))
		fi
	done < <(sed -n 's/^#[[:space:]]*include[[:space:]]*"\([^"]*\/[^"]*\)".*/\1/p' "$f")
done < <(git ls-files -- '*.c' '*.h' | grep -v -e '^tests/' -e '^bench/')

[ "$files" -gt 50 ] || { echo "layers: found only $files source files: wrong directory?"; exit 1; }
echo "layers: $files files, $bad includes against the flow"
[ "$bad" -eq 0 ]
