// SPDX-License-Identifier: Apache-2.0

package main

// csi-publish / csi-unpublish: the calls kubelet makes to a CSI node plugin for a pod's
// ephemeral inline volume (NodeGetCapabilities, then NodePublishVolume with the podInfoOnMount
// volume context; NodeUnpublishVolume), so the suite drives svidfs-csi exactly as a node would.
// Prints `OK` or `<gRPC code> <message>`; exits 0 on OK, 1 otherwise.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

type csiFlags struct {
	endpoint, kubeletRoot, uid, ns, name, sa, vol string
	timeout                                       time.Duration
	attrs                                         listFlag
}

func (f *csiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoint, "endpoint", "", "plugin socket (unix:///path)")
	fs.StringVar(&f.kubeletRoot, "kubelet-root", "", "kubelet root directory")
	fs.StringVar(&f.uid, "pod-uid", "", "pod UID")
	fs.StringVar(&f.ns, "namespace", "default", "pod namespace")
	fs.StringVar(&f.name, "pod-name", "pod", "pod name")
	fs.StringVar(&f.sa, "service-account", "default", "pod service account")
	fs.StringVar(&f.vol, "volume", "spiffe", "volume name in the pod spec")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "RPC deadline")
	fs.Var(&f.attrs, "attr", "volumeAttributes key=value (repeatable)")
}

// kubelet's volume id for an inline volume: csi-<sha256(pod uid + volume name)>.
func (f *csiFlags) volumeID() string {
	h := sha256.Sum256([]byte(f.uid + f.vol))
	return "csi-" + hex.EncodeToString(h[:])
}

func (f *csiFlags) target() string {
	return filepath.Join(f.kubeletRoot, "pods", f.uid, "volumes", "kubernetes.io~csi", f.vol, "mount")
}

func csiCall(args []string, publish bool) int {
	fs := flag.NewFlagSet("csi", flag.ExitOnError)
	f := &csiFlags{}
	f.register(fs)
	fs.Parse(args)
	if f.endpoint == "" || f.kubeletRoot == "" || f.uid == "" {
		fs.Usage()
		return 2
	}
	conn, err := dial(f.endpoint)
	if err != nil {
		fmt.Println(grpcErr(err))
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	node := csi.NewNodeClient(conn)
	if !publish {
		_, err = node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{
			VolumeId: f.volumeID(), TargetPath: f.target()})
		return report(err)
	}
	if _, err = node.NodeGetCapabilities(ctx, &csi.NodeGetCapabilitiesRequest{}); err != nil {
		return report(err)
	}
	if err := os.MkdirAll(filepath.Dir(f.target()), 0o750); err != nil {
		fmt.Println(err)
		return 1
	}
	vc := map[string]string{
		"csi.storage.k8s.io/pod.name":            f.name,
		"csi.storage.k8s.io/pod.namespace":       f.ns,
		"csi.storage.k8s.io/pod.uid":             f.uid,
		"csi.storage.k8s.io/serviceAccount.name": f.sa,
		"csi.storage.k8s.io/ephemeral":           "true",
	}
	for _, a := range f.attrs {
		k, v, _ := strings.Cut(a, "=")
		vc[k] = v
	}
	_, err = node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId:   f.volumeID(),
		TargetPath: f.target(),
		Readonly:   true,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{
				Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		VolumeContext: vc,
	})
	return report(err)
}

func report(err error) int {
	fmt.Println(grpcErr(err))
	if err != nil {
		return 1
	}
	return 0
}
