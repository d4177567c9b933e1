// SPDX-License-Identifier: Apache-2.0

package main

// kubelet-register: what kubelet's plugin watcher and its CSI plugin handler do with a
// registration socket that appears in kubelet's plugins_registry directory (served by
// kubernetes-csi's node-driver-registrar): GetInfo (pluginregistration v1); validate the answer
// as kubelet does (type CSIPlugin, a CSI 1.x version); reach the driver at the endpoint it names
// (NodeGetInfo, which kubelet calls to fill in the CSINode object); then tell the registrar the
// outcome with NotifyRegistrationStatus. Prints one `key value` line per fact, then the times:
//
//	interop-check kubelet-register -socket DIR/<driver>-reg.sock [-timeout 10s]
//
// Exits 0 when the registration succeeded and was notified, 1 otherwise.

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// highestCSI1 is kubelet's rule (pkg/volume/csi: highestSupportedVersion): the driver must
// offer a 1.x version (0.x is refused since Kubernetes 1.17, 2.x is unknown); the highest wins.
func highestCSI1(versions []string) (string, error) {
	best, bestKey := "", [3]int{-1, -1, -1}
	for _, v := range versions {
		var key [3]int
		parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
		ok := len(parts) >= 2
		for i := 0; ok && i < len(parts); i++ {
			n, err := strconv.Atoi(parts[i])
			ok = err == nil && n >= 0
			key[i] = n
		}
		if !ok || key[0] != 1 {
			continue
		}
		if key[1] > bestKey[1] || (key[1] == bestKey[1] && key[2] > bestKey[2]) {
			best, bestKey = v, key
		}
	}
	if best == "" {
		return "", fmt.Errorf("no CSI 1.x version among %q", versions)
	}
	return best, nil
}

func kubeletRegister(args []string) int {
	fs := flag.NewFlagSet("kubelet-register", flag.ExitOnError)
	sock := fs.String("socket", "", "the registrar's registration socket (<dir>/<driver>-reg.sock)")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of each call")
	fs.Parse(args)
	if *sock == "" {
		fs.Usage()
		return 2
	}
	var p profile
	var took []string
	defer func() { fmt.Println("took " + strings.Join(took, " ")) }()
	defer p.print() // runs first: the facts, then the times
	timed := func(name string, call func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		t0 := time.Now()
		err := call(ctx)
		took = append(took, fmt.Sprintf("%s=%.1fms", name,
			float64(time.Since(t0).Microseconds())/1000))
		return err
	}

	conn, err := dial(*sock)
	if err != nil {
		p.err("info", err)
		return 1
	}
	defer conn.Close()
	reg := registerapi.NewRegistrationClient(conn)
	var info *registerapi.PluginInfo
	err = timed("getinfo", func(ctx context.Context) (err error) {
		info, err = reg.GetInfo(ctx, &registerapi.InfoRequest{})
		return err
	})
	if err != nil {
		p.add("info", "ERROR %s", grpcErr(err))
		return 1
	}
	p.add("info.type", "%s", info.Type)
	p.add("info.name", "%s", info.Name)
	p.add("info.endpoint", "%s", info.Endpoint)
	p.add("info.supported_versions", "%s", strings.Join(info.SupportedVersions, ","))

	// kubelet's validation; a refusal is reported to the registrar as kubelet reports it.
	endpoint := info.Endpoint
	if endpoint == "" {
		endpoint = *sock // kubelet: a plugin that names no endpoint serves both on one socket
	}
	verr := error(nil)
	if info.Type != registerapi.CSIPlugin {
		verr = fmt.Errorf("plugin type %q is not %s", info.Type, registerapi.CSIPlugin)
	} else if v, err := highestCSI1(info.SupportedVersions); err != nil {
		verr = err
	} else {
		p.add("kubelet.csi_version", "%s", v)
		verr = nodeInfo(&p, endpoint, timed)
	}

	status := &registerapi.RegistrationStatus{PluginRegistered: verr == nil}
	if verr != nil {
		status.Error = verr.Error()
		p.add("kubelet.refused", "%s", oneLine(verr))
	}
	err = timed("notify", func(ctx context.Context) error {
		_, err := reg.NotifyRegistrationStatus(ctx, status)
		return err
	})
	p.add("notify", "registered=%t %s", status.PluginRegistered, grpcErr(err))
	if verr != nil || err != nil {
		return 1
	}
	return 0
}

// nodeInfo is kubelet's RegisterPlugin for a CSI driver: NodeGetInfo at the endpoint the
// registrar named (node id, volume limit and topology go into the CSINode object).
func nodeInfo(p *profile, endpoint string, timed func(string, func(context.Context) error) error) error {
	conn, err := dial(endpoint)
	if err != nil {
		return err
	}
	defer conn.Close()
	var ni *csi.NodeGetInfoResponse
	err = timed("nodegetinfo", func(ctx context.Context) (err error) {
		ni, err = csi.NewNodeClient(conn).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
		return err
	})
	if err != nil {
		p.add("node", "ERROR %s", grpcErr(err))
		return fmt.Errorf("NodeGetInfo at %s: %s", endpoint, grpcErr(err))
	}
	p.add("node.node_id", "%s", ni.NodeId)
	p.add("node.max_volumes_per_node", "%d", ni.MaxVolumesPerNode)
	var topo []string
	for k, v := range ni.GetAccessibleTopology().GetSegments() {
		topo = append(topo, k+"="+v)
	}
	sort.Strings(topo)
	p.add("node.topology", "%s", strings.Join(topo, ","))
	if ni.NodeId == "" {
		return fmt.Errorf("NodeGetInfo at %s: empty node id", endpoint)
	}
	return nil
}
