# matrixlib.sh: the team and the permission matrix of the stories where users
# act on each other's files in a shared inbox: permission_matrix.sh (the
# mount), spool_abuse.sh (the spool), and shared_inboxes.sh (the team only).
# Source it after lib.sh.
#
# A story keeps its own MATRIX table (an action a line, one expected value
# per role), its ROLES (the columns, in the table's order) and its cell
# function; matrix_run walks the table, makes ann's artifact of each cell
# and calls the cell function, which does the action and checks the outcome.

TEAM=sigfs-e2e-team

# The user of each role, and the inbox (a key's name) where the role acts.
# A story lists in ROLES the roles it has columns for.
declare -A USER_OF=([owner]=sf-ann [member]=sf-ben [sticky]=sf-ben [nonmem]=sf-mal
	[admin]=sf-adm [root]=root)
declare -A INBOX_OF=([owner]=sticky [member]=plain [sticky]=sticky [nonmem]=sticky
	[admin]=sticky [root]=sticky)

# matrix_users: the group $TEAM, whose members are sf-ann and sf-ben, and
# sf-mal, who is not in it (made once per machine, membership set each time).
matrix_users() {
	local u
	ensure_group "$TEAM"
	for u in sf-ann sf-ben sf-mal; do ensure_user "$u"; done
	usermod -a -G "$TEAM" sf-ann
	usermod -a -G "$TEAM" sf-ben
	gpasswd -d sf-mal "$TEAM" >/dev/null 2>&1 || true
}

# try USER PYTHON: run PYTHON (os, sys and errno imported) as USER; prints OK
# or the errno name.
try() {
	as "$1" /usr/bin/python3 -c "
import os, sys, errno
try:
    $2
    print('OK')
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
"
}

# matrix_run ROOT SIGNED CELL <<<"$MATRIX": for each line of the matrix
# (ACTION WANT...) and each role of ROLES, set the cell's variables
#   action role want  the line's action, the column's role, its expected value
#   u in I            the role's user, inbox (key) and inbox directory ROOT/in
#   n c what          the cell's number (counting from 1 over the whole table),
#                     ann's artifact's name c$n.bin, and the cell's description
# then make ann's artifact: $T/pub/a$n (ann's bytes, copied in by ann as
# $I/$c) and $T/pub/b$n (other bytes, for the action), world-readable ($T/pub
# is the story's, mode 0755); wait with `SIGNED KEY LOCAL SIG` (verify_raw,
# signed_over ...) until $I/$c.sig is ann's signature over a$n, keep a copy of
# it as $T/ann$n.sig, and call CELL (no argument; it ends a cell early with
# `return 0`).
# After the table $n is the number of cells tried (the story checks it).
# shellcheck disable=SC2034 # the cell's variables are for CELL
matrix_run() {
	local root=$1 signed=$2 cell=$3 rows row want_row wants i
	mapfile -t rows
	n=0
	for row in "${rows[@]}"; do
		read -r action want_row <<<"$row"
		[ -n "$action" ] || continue
		read -r -a wants <<<"$want_row"
		for i in "${!ROLES[@]}"; do
			role=${ROLES[$i]}
			want=${wants[$i]}
			u=${USER_OF[$role]}
			in=${INBOX_OF[$role]}
			I=$root/$in
			n=$((n + 1))
			c=c$n.bin
			what="$action by $role ($u in $in)"
			head -c $((20000 + n)) /dev/urandom >"$T/pub/a$n"
			head -c $((10000 + n)) /dev/urandom >"$T/pub/b$n"
			chmod 0644 "$T/pub/a$n" "$T/pub/b$n"
			as sf-ann cp "$T/pub/a$n" "$I/$c" || fail "$what: fixture: ann's cp failed"
			"$signed" "$in" "$T/pub/a$n" "$I/$c.sig" || fail "$what: fixture: ann's $c is not signed"
			cp "$I/$c.sig" "$T/ann$n.sig"
			"$cell"
		done
	done
}
