# SPDX-License-Identifier: Apache-2.0
# kubernetes-csi's csi-node-driver-registrar against svidfs-csi (sourced by run.sh, the stack
# already running): the real registrar asks svidfs-csi its name (GetPluginInfo) and serves
# kubelet's plugin-registration socket; `interop-check kubelet-register` plays kubelet's plugin
# watcher on it (GetInfo, kubelet's validation, NodeGetInfo at the endpoint it names,
# NotifyRegistrationStatus). The flags are the DaemonSet's (deploy/kubernetes/base), with
# scratch paths. The binary: $SVIDFS_REGISTRAR, else the one build-registrar.sh puts in the
# interop cache; without either, one SKIP line (the Go module proxy does not serve its module).
DRIVER=csi.svidfs.spiffe.io
REGISTRAR=${SVIDFS_REGISTRAR:-$("$HERE/build-registrar.sh" --path)}
if [ ! -x "$REGISTRAR" ]; then
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # SKIP registrar: module not served by the Go module proxy"
	echo "no registrar at $REGISTRAR: build it with" \
		"tests/interop/build-registrar.sh <checkout at v2.17.0>, or set SVIDFS_REGISTRAR" | diag
	return 0
fi
"$REGISTRAR" --version 2>&1 | sed 's/^/registrar: /' | diag
REG_DIR=$T/plugins_registry
REG_SOCK=$REG_DIR/$DRIVER-reg.sock
REG_HTTP=127.0.0.1:$(free_port)
mkdir -p "$REG_DIR"

t0=$(now_ms)
"$REGISTRAR" --csi-address "$CSI_SOCK" --kubelet-registration-path "$CSI_SOCK" \
	--plugin-registration-path "$REG_DIR" --http-endpoint "$REG_HTTP" --v 5 \
	>"$T/registrar.log" 2>&1 &
REG_PID=$!
PIDS="$PIDS $REG_PID"
check "the registrar learns the driver name from svidfs-csi and opens $DRIVER-reg.sock" \
	spire_wait -t 30 "registration socket" test -S "$REG_SOCK"
echo "registration socket up $(($(now_ms) - t0)) ms after the registrar started" | diag

"$IC" kubelet-register -socket "$REG_SOCK" >"$T/register.out" 2>&1
reg_rc=$?
diag <"$T/register.out"
reg_fact() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$T/register.out"; }
expect_eq "GetInfo: type CSIPlugin" CSIPlugin "$(reg_fact info.type)"
expect_eq "GetInfo: name is the driver's ($DRIVER)" "$DRIVER" "$(reg_fact info.name)"
expect_eq "GetInfo: endpoint is the plugin's socket (--kubelet-registration-path)" \
	"$CSI_SOCK" "$(reg_fact info.endpoint)"
expect_eq "GetInfo: kubelet accepts the supported versions (CSI 1.x)" 1.0.0 \
	"$(reg_fact kubelet.csi_version)"
expect_eq "kubelet reaches svidfs-csi at that endpoint: NodeGetInfo answers the node id" \
	interop-node "$(reg_fact node.node_id)"
expect_eq "NotifyRegistrationStatus(registered=true) accepted" "registered=true OK" \
	"$(reg_fact notify)"
expect_eq "the kubelet side exits 0" 0 "$reg_rc"
# v2.17.0 logs status="plugin_registered:true", older ones &RegistrationStatus{PluginRegistered:true
check "the registrar logged kubelet's registration status" grep -Eq \
	'Received NotifyRegistrationStatus call.*[Pp]lugin_?[Rr]egistered:true' "$T/registrar.log"
# Running, not a zombie waiting to be reaped (kill -0 succeeds on both).
reg_alive() { [ "$(awk '{ print $3 }' "/proc/$REG_PID/stat" 2>/dev/null)" != Z ] && kill -0 "$REG_PID"; }
check "the registrar keeps serving after registration" reg_alive
check "the registrar's /healthz answers ok (it calls GetInfo on its own socket)" \
	sh -c "[ \"\$(curl -sS --max-time 10 -w ' %{http_code}' 'http://$REG_HTTP/healthz')\" = 'ok 200' ]"
kill "$REG_PID" 2>/dev/null
check "SIGTERM: the registrar removes its registration socket" \
	spire_wait -t 10 "socket removed" not test -e "$REG_SOCK"
spire_wait -t 10 "the registrar's exit" not reg_alive || kill -9 "$REG_PID" 2>/dev/null
wait "$REG_PID"
expect_eq "SIGTERM: the registrar exits 0" 0 "$?"
