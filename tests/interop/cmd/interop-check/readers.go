// SPDX-License-Identifier: Apache-2.0

package main

// readers: N goroutines open+read+close a credential bundle file (key, then chain) until
// SIGTERM/SIGINT, and check every read: whole PEM, key matches the leaf. Prints
// `reads=N torn=N errors=N serials=N` (distinct leaf serials seen) and the first errors.

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func readOnce(path string) (serial string, torn bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, err
	}
	var key crypto.Signer
	var leaf *x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return "", true, nil
			}
			key, _ = k.(crypto.Signer)
		case "CERTIFICATE":
			if leaf == nil {
				if leaf, err = x509.ParseCertificate(blk.Bytes); err != nil {
					return "", true, nil
				}
			}
		}
	}
	if key == nil || leaf == nil || !keyMatches(key, leaf) {
		return "", true, nil
	}
	return leaf.SerialNumber.Text(16), false, nil
}

func readers(args []string) int {
	fs := flag.NewFlagSet("readers", flag.ExitOnError)
	n := fs.Int("threads", 2, "reader goroutines")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	path := fs.Arg(0)
	var reads, torn, errs atomic.Int64
	var mu sync.Mutex
	serials := map[string]bool{}
	firstErrs := []string{}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var done atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				s, t, err := readOnce(path)
				reads.Add(1)
				mu.Lock()
				switch {
				case err != nil:
					errs.Add(1)
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
				case t:
					torn.Add(1)
				default:
					serials[s] = true
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	<-stop
	done.Store(true)
	wg.Wait()
	fmt.Printf("reads=%d torn=%d errors=%d serials=%d\n", reads.Load(), torn.Load(), errs.Load(), len(serials))
	for _, e := range firstErrs {
		fmt.Println(e)
	}
	return 0
}
