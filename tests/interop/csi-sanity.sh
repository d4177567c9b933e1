# SPDX-License-Identifier: Apache-2.0
# kubernetes-csi's csi-sanity against svidfs-csi (sourced by run.sh, the stack already running):
# one TAP line per spec that ran, its result; the skipped ones listed with the reason.
# svidfs-csi is an ephemeral-only node plugin (no controller, no staging): specs that need a
# volume from CreateVolume do not apply and are skipped by name, each with its reason below.
SANITY_SKIP=(
	# needs CreateVolume (a controller) to get a volume to publish:
	"NodeUnpublishVolume should remove target path"
	"NodeGetVolumeStats should fail when volume does not exist on the specified path"
	# a node-only plugin: it advertises no CONTROLLER_SERVICE and serves no Controller API
	# (csi-sanity sends the Controller specs to the node endpoint unless told otherwise):
	"\\[Controller Server\\]"
)
sanity_dir=$T/sanity
mkdir -p "$sanity_dir"
skip_re=$(printf '%s|' "${SANITY_SKIP[@]}")
skip_re=${skip_re%|}
"$TOOLS/csi-sanity" -csi.endpoint "unix://$CSI_SOCK" -csi.mountdir "$sanity_dir/mount" \
	-csi.stagingdir "$sanity_dir/staging" -ginkgo.skip "$skip_re" \
	-ginkgo.junit-report "$sanity_dir/junit.xml" -ginkgo.no-color >"$sanity_dir/out.txt" 2>&1
sanity_rc=$?
if [ ! -s "$sanity_dir/junit.xml" ]; then
	not_ok "csi-sanity ran (exit $sanity_rc, no report)"
	tail -30 "$sanity_dir/out.txt" | diag
else
	python3 - "$sanity_dir/junit.xml" >"$sanity_dir/results.txt" <<'PY'
import sys, xml.etree.ElementTree as ET
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    name = " ".join(tc.get("name", "").split())
    if name.startswith("[BeforeSuite]") or name.startswith("[AfterSuite]"):
        continue
    if tc.find("skipped") is not None:
        msg = tc.find("skipped").get("message", "") or ""
        print("SKIP\t%s\t%s" % (name, " ".join(msg.split())[:160]))
    elif tc.find("failure") is not None or tc.find("error") is not None:
        f = tc.find("failure") if tc.find("failure") is not None else tc.find("error")
        print("FAIL\t%s\t%s" % (name, " ".join((f.get("message") or f.text or "").split())[:300]))
    else:
        print("PASS\t%s\t" % name)
PY
	ran=0
	while IFS=$'\t' read -r res name why; do
		case $res in
		PASS) ok "csi-sanity: $name"; ran=$((ran + 1)) ;;
		FAIL) not_ok "csi-sanity: $name"; echo "$why" | diag; ran=$((ran + 1)) ;;
		esac
	done <"$sanity_dir/results.txt"
	echo "csi-sanity: $ran specs ran; skipped:" | diag
	awk -F'\t' '$1 == "SKIP" { print "  " $2 " -- " ($3 == "" ? "skipped by name: see SANITY_SKIP" : $3) }' \
		"$sanity_dir/results.txt" | sort | uniq -c | sort -rn | head -60 | diag
	check "csi-sanity ran specs and exited as its results say" \
		sh -c "[ $ran -gt 0 ] && { [ $sanity_rc = 0 ] || grep -q '^FAIL' '$sanity_dir/results.txt'; }"
fi
