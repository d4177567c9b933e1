# SPDX-License-Identifier: Apache-2.0
# The seed's SPIRE topology on one machine (sourced by tests/interop/run.sh and tools/dev demo
# --spire): unix sockets and loopback only, every process started here and killed by pid.
#
#   root server (example.org, self-signed CA, SQLite)
#     ├─ root agent ra1 ── nested server n1 (UpstreamAuthority "spire") ── workload agent a1
#     └─ root agent ra2 ── nested server n2 (UpstreamAuthority "spire") ── workload agent a2
#   other server (other.org): the federated trust domain, bundles exchanged with `bundle set`
#
# a1 and a2 run on the workload "node" with admin_socket_path and authorized_delegates, and an
# entry for svidfs's own ID (unix workload attestor over the admin socket).
# Needs: $T (scratch directory), $TOOLS (spire-server, spire-agent), diag() (lib.sh).

TD=example.org
FED_TD=other.org
SVIDFS_ID=spiffe://$TD/svidfs
SPIRE_PIDS=""

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# spire_cli BINARY SOCKET ARGS...: the -socketPath flag belongs to the subcommand, so it goes
# after the command words (every word before the first -flag).
spire_cli() {
	local bin=$1 sock=$2 words=()
	shift 2
	while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do
		words+=("$1")
		shift
	done
	"$TOOLS/$bin" "${words[@]}" -socketPath "$sock" "$@"
}
# sctl NAME ARGS...: spire-server CLI against server NAME's API socket.
sctl() { spire_cli spire-server "$T/$1/api.sock" "${@:2}"; }
# actl NAME ARGS...: spire-agent CLI against agent NAME's Workload API socket.
actl() { spire_cli spire-agent "$T/$1/public/api.sock" "${@:2}"; }

# spire_wait [-t SECONDS] DESC COMMAND...: polls every 100 ms for up to SECONDS (default 60).
spire_wait() {
	local limit=60 desc i
	if [ "$1" = -t ]; then
		limit=$2
		shift 2
	fi
	desc=$1
	shift
	for ((i = 0; i < limit * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "timed out waiting for $desc" | diag
	return 1
}

# server_conf NAME TD PORT [UPSTREAM_AGENT]: writes $T/NAME/server.conf.
server_conf() {
	local name=$1 td=$2 port=$3 upstream=${4:-}
	mkdir -p "$T/$name/data"
	cat >"$T/$name/server.conf" <<-EOF
	server {
	    bind_address = "127.0.0.1"
	    bind_port = "$port"
	    socket_path = "$T/$name/api.sock"
	    trust_domain = "$td"
	    data_dir = "$T/$name/data"
	    log_level = "DEBUG"
	    ca_ttl = "${SPIRE_CA_TTL:-24h}"
	    default_x509_svid_ttl = "1h"
	    default_jwt_svid_ttl = "5m"
	    ca_subject { country = ["US"] organization = ["svidfs interop"] common_name = "$name" }
	    experimental { cache_reload_interval = "1s" }
	}
	plugins {
	    DataStore "sql" {
	        plugin_data {
	            database_type = "sqlite3"
	            connection_string = "$T/$name/data/datastore.sqlite3"
	        }
	    }
	    NodeAttestor "join_token" { plugin_data {} }
	    KeyManager "disk" { plugin_data { keys_path = "$T/$name/data/keys.json" } }
	EOF
	if [ -n "$upstream" ]; then
		cat >>"$T/$name/server.conf" <<-EOF
		    UpstreamAuthority "spire" {
		        plugin_data {
		            server_address = "127.0.0.1"
		            server_port = "$ROOT_PORT"
		            workload_api_socket = "$T/$upstream/public/api.sock"
		        }
		    }
		EOF
	fi
	echo "}" >>"$T/$name/server.conf"
}

# spire_run KIND NAME CTL [ARGS...]: runs spire-KIND (server, agent) with $T/NAME/KIND.conf and
# ARGS, sets SERVER_PID_NAME or AGENT_PID_NAME, waits until `CTL NAME healthcheck` answers.
spire_run() {
	local kind=$1 name=$2 ctl=$3
	shift 3
	"$TOOLS/spire-$kind" run -config "$T/$name/$kind.conf" "$@" >>"$T/$name/$kind.log" 2>&1 &
	eval "${kind^^}_PID_$name=$!"
	SPIRE_PIDS="$SPIRE_PIDS $!"
	spire_wait "$kind $name healthy" "$ctl" "$name" healthcheck || {
		tail -20 "$T/$name/$kind.log" | diag
		return 1
	}
}

# server_start NAME: runs spire-server with $T/NAME/server.conf, waits for its healthcheck.
server_start() { spire_run server "$1" sctl; }

# spire_stop PID: SIGTERM, then SIGKILL after 10 s.
spire_stop() {
	local pid=$1
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
}

server_stop() {
	local pid
	eval "pid=\$SERVER_PID_$1"
	spire_stop "$pid"
}

# agent_conf NAME SERVER_PORT [ADMIN=yes|no] [DELEGATE...]: writes $T/NAME/agent.conf.
agent_conf() {
	local name=$1 port=$2 admin=${3:-no}
	shift 3 || shift $#
	local delegates="" d
	for d in "$@"; do delegates="$delegates${delegates:+, }\"$d\""; done
	mkdir -p "$T/$name/data" "$T/$name/public" "$T/$name/admin"
	{
		echo "agent {"
		echo "    data_dir = \"$T/$name/data\""
		echo "    log_level = \"DEBUG\""
		echo "    server_address = \"127.0.0.1\""
		echo "    server_port = \"$port\""
		echo "    socket_path = \"$T/$name/public/api.sock\""
		echo "    trust_bundle_path = \"$T/root-bundle.pem\""
		echo "    trust_domain = \"$TD\""
		if [ "$admin" = yes ]; then
			echo "    admin_socket_path = \"$T/$name/admin/admin.sock\""
			echo "    authorized_delegates = [$delegates]"
		fi
		echo "    experimental { sync_interval = \"1s\" }"
		echo "}"
		echo "plugins {"
		echo "    NodeAttestor \"join_token\" { plugin_data {} }"
		echo "    KeyManager \"disk\" { plugin_data { directory = \"$T/$name/data\" } }"
		echo "    WorkloadAttestor \"unix\" { plugin_data {} }"
		echo "}"
	} >"$T/$name/agent.conf"
}

# agent_start NAME [TOKEN]: runs spire-agent, waits until its Workload API answers.
agent_start() { spire_run agent "$1" actl ${2:+-joinToken "$2"}; }

agent_stop() {
	local pid
	eval "pid=\$AGENT_PID_$1"
	spire_stop "$pid"
}

agent_pid() { eval "echo \$AGENT_PID_$1"; }

# join NAME SERVER: a join token from SERVER for agent NAME; sets AGENT_ID_NAME.
join() {
	local name=$1 server=$2 tok
	tok=$(sctl "$server" token generate -ttl 600 | awk '/^Token:/ { print $2 }')
	[ -n "$tok" ] || return 1
	eval "AGENT_ID_$name=spiffe://$TD/spire/agent/join_token/$tok"
	eval "TOKEN_$name=$tok"
}

agent_id() { eval "echo \$AGENT_ID_$1"; }

# entry SERVER ARGS...: spire-server entry create; prints the entry id.
entry() {
	local server=$1
	shift
	sctl "$server" entry create "$@" | awk '/^Entry ID/ { print $NF; exit }'
}

# pod_entry SPIFFE_ID UID NS SA [MORE ARGS...]: the same pod entry on both nested servers, each
# parented to its workload agent (the seed: each subordinate knows the pods of its node).
# ENTRY_ID=x gives the entries the ids x-n1 and x-n2 (SPIRE orders a workload's SVIDs by entry
# id: the smallest is the default SVID).
pod_entry() {
	local id=$1 uid=$2 ns=$3 sa=$4
	shift 4
	local s a
	for s in n1 n2; do
		a=a${s#n}
		entry "$s" -parentID "$(agent_id "$a")" -spiffeID "$id" -selector "k8s:pod-uid:$uid" \
			-selector "k8s:ns:$ns" -selector "k8s:sa:$sa" ${ENTRY_ID:+-entryID "$ENTRY_ID-$s"} \
			"$@" >/dev/null || return 1
	done
}

# topology_up: everything above, ready for svidfs. Takes 20-60 s.
topology_up() {
	local t0=$SECONDS
	ROOT_PORT=$(free_port)
	server_conf root "$TD" "$ROOT_PORT"
	server_start root || return 1
	sctl root bundle show -format pem >"$T/root-bundle.pem" || return 1

	# Root agents ra1/ra2: one per nested server's "node"; each node's downstream entry.
	local i
	for i in 1 2; do
		join "ra$i" root || return 1
		agent_conf "ra$i" "$ROOT_PORT" no
		agent_start "ra$i" "$(eval "echo \$TOKEN_ra$i")" || return 1
		entry root -parentID "$(agent_id "ra$i")" -spiffeID "spiffe://$TD/nested/n$i" \
			-selector unix:uid:0 -downstream >/dev/null || return 1
	done
	for i in 1 2; do
		spire_wait "downstream SVID on ra$i" actl "ra$i" api fetch x509 || return 1
		eval "N${i}_PORT=$(free_port)"
		server_conf "n$i" "$TD" "$(eval "echo \$N${i}_PORT")" "ra$i"
		server_start "n$i" || return 1
	done

	# The federated trust domain: its own server; bundles exchanged both ways.
	OTHER_PORT=$(free_port)
	server_conf other "$FED_TD" "$OTHER_PORT"
	server_start other || return 1
	sctl other bundle show -format spiffe >"$T/other.bundle.json" || return 1
	sctl other bundle show -format pem >"$T/other-bundle.pem" || return 1
	sctl root bundle show -format spiffe >"$T/example.bundle.json" || return 1
	sctl other bundle set -format spiffe -id "spiffe://$TD" -path "$T/example.bundle.json" >/dev/null ||
		return 1
	for i in 1 2; do
		sctl "n$i" bundle set -format spiffe -id "spiffe://$FED_TD" \
			-path "$T/other.bundle.json" >/dev/null || return 1
	done

	# The workload node: agents a1 (to n1) and a2 (to n2), svidfs an authorized delegate.
	for i in 1 2; do
		join "a$i" "n$i" || return 1
		agent_conf "a$i" "$(eval "echo \$N${i}_PORT")" yes "$SVIDFS_ID"
		agent_start "a$i" "$(eval "echo \$TOKEN_a$i")" || return 1
		entry "n$i" -parentID "$(agent_id "a$i")" -spiffeID "$SVIDFS_ID" \
			-selector unix:uid:0 >/dev/null || return 1
	done
	for i in 1 2; do
		spire_wait "svidfs's entry on a$i" actl "a$i" api fetch x509 || return 1
	done
	echo "SPIRE topology up in $((SECONDS - t0)) s" | diag
}

topology_down() {
	local p
	for p in $SPIRE_PIDS; do kill "$p" 2>/dev/null; done
	for p in $SPIRE_PIDS; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	SPIRE_PIDS=""
}
