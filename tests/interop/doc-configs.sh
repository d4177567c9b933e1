#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The SPIRE configuration files the interop suite runs, as docs/spire.md shows them (scratch
# paths become /srv/spire/..., ports 8081-8084):
#   doc-configs.sh print T ROOT_PORT N1_PORT N2_PORT OTHER_PORT   print them (to paste)
#   doc-configs.sh check T ROOT_PORT N1_PORT N2_PORT OTHER_PORT DOC
#                                         exit 1 unless DOC holds each of them verbatim
set -euo pipefail
mode=$1 T=$2 root=$3 n1=$4 n2=$5 other=$6 doc=${7:-}
files="root/server.conf n1/server.conf a1/agent.conf"
normalize() {
	sed -e "s#$T/#/srv/spire/#g" -e "s#\"$root\"#\"8081\"#g" -e "s#\"$n1\"#\"8082\"#g" \
		-e "s#\"$n2\"#\"8083\"#g" -e "s#\"$other\"#\"8084\"#g" "$T/$1"
}
rc=0
for f in $files; do
	case $mode in
	print)
		echo "# /srv/spire/$f"
		normalize "$f"
		echo
		;;
	check)
		want=$( (echo "# /srv/spire/$f"; normalize "$f"))
		if ! python3 -c 'import sys; sys.exit(0 if sys.argv[1] in open(sys.argv[2]).read() else 1)' \
			"$want" "$doc"; then
			echo "$doc does not show /srv/spire/$f as the suite runs it:"
			echo "$want"
			rc=1
		fi
		;;
	esac
done
exit $rc
