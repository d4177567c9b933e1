# SPDX-License-Identifier: Apache-2.0
# Shared by the takeover tests (sourced after tests/integration/lib.sh): a keeper, pods, and one
# reader per pod in its own mount namespace reading through a read-only bind mount of
# pods/<uid>, as the CSI plugin gives a pod.
KEEPER=$BUILD/fs/takeover/svidfs-keeper
READER=$BUILD/tests/takeover/takeover-reader
KEY=credential-bundle.private-key.pem
READER_PIDS=""

start_keeper() {
	"$KEEPER" --socket "$T/keeper.sock" >>"$T/keeper.log" 2>&1 &
	KEEPER_PID=$!
	PIDS="$PIDS $KEEPER_PID"
	for _ in $(seq 50); do [ -S "$T/keeper.sock" ] && return 0; sleep 0.1; done
	return 1
}

# start_readers UID...: reader i reads $T/pod-i/$KEY in a private mount namespace. The last
# one reads with O_DIRECT (every read reaches the daemon); the others mostly hit the page cache.
# Returns once each has completed a read (1 if one does not within 10 s).
# ALL_DIRECT=1: every reader reads with O_DIRECT.
start_readers() {
	local i=0 p mode
	for p in "$@"; do
		i=$((i + 1))
		mode=""
		if [ "$i" = "$#" ] || [ "${ALL_DIRECT:-}" = 1 ]; then mode=direct; fi
		mkdir -p "$T/pod-$i"
		unshare -m --propagation private sh -c \
			"mount --bind -r '$MNT/pods/$p' '$T/pod-$i' && exec '$READER' '$T/pod-$i/$KEY' '$T/reader-$i.out' $mode" &
		READER_PIDS="$READER_PIDS $!"
		PIDS="$PIDS $!"
	done
	N_READERS=$i
	# Until every reader has completed a read (bounded), not for a fixed time.
	for i in $(seq "$N_READERS"); do
		wait_for grep -q '^started' "$T/reader-$i.out" || return 1
	done
}

# stop_readers: SIGTERM each; a reader that does not exit within 10 s is blocked.
# Sets BLOCKED, and READ_TOTAL/ERR_TOTAL/INVALID_TOTAL/MAX_GAP_US from the readers' reports.
stop_readers() {
	local p i=0 out
	BLOCKED=0 READ_TOTAL=0 ERR_TOTAL=0 ERR_DIRECT=0 STALE_TOTAL=0 INVALID_TOTAL=0 MAX_GAP_US=0
	for p in $READER_PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $READER_PIDS; do
		local gone=0
		for _ in $(seq 100); do
			if ! kill -0 "$p" 2>/dev/null; then gone=1; break; fi
			sleep 0.1
		done
		[ $gone = 1 ] || BLOCKED=$((BLOCKED + 1))
	done
	for i in $(seq "$N_READERS"); do
		out=$(grep '^reads=' "$T/reader-$i.out" 2>/dev/null)
		echo "reader $i: ${out:-no report}" | diag
		[ -n "$out" ] || continue
		eval "$(echo "$out" | tr ' ' '\n' | grep -E '^(reads|errors|estale|invalid|max_gap_us)=' | sed 's/^/R_/')"
		READ_TOTAL=$((READ_TOTAL + R_reads))
		# The last reader reads with O_DIRECT: its errors are reported on their own line.
		if [ "$i" = "$N_READERS" ]; then
			ERR_DIRECT=$((ERR_DIRECT + R_errors))
		else
			ERR_TOTAL=$((ERR_TOTAL + R_errors))
		fi
		STALE_TOTAL=$((STALE_TOTAL + R_estale))
		INVALID_TOTAL=$((INVALID_TOTAL + R_invalid))
		[ "$R_max_gap_us" -gt "$MAX_GAP_US" ] && MAX_GAP_US=$R_max_gap_us
	done
	READER_PIDS=""
}

# The daemon's pid from its pidless start: start_daemon sets DAEMON_PID.
info_of() { ctl info | awk -v k="$1" '$1 == k { print $2 }'; }

