// SPDX-License-Identifier: Apache-2.0

// interop-check judges a SPIFFE agent the way its real clients do: go-spiffe v2's Workload API
// client and SPIRE's Delegated Identity API client (spire-api-sdk). It prints a "profile": one
// `key value` line per observed fact, with nothing that changes between runs (no serials, no
// times, no key bytes), so the profile of svidfs-devagent and that of a real SPIRE agent set up
// the same way can be compared with diff. A fact that cannot be observed prints `key ERROR ...`.
//
//	interop-check workload -socket unix:///path -audience AUD [-ttl SECONDS]
//	interop-check delegated -admin unix:///path -selector k8s:pod-uid:U ... -audience AUD
//	            [-nomatch-selector k8s:pod-uid:NONE] [-ttl SECONDS]
//	interop-check first-svid -admin unix:///path -selector ... [-timeout 10s]
//	interop-check readers [-threads N] FILE      (until SIGTERM)
//	interop-check jwt-verify -token FILE -jwks FILE -trust-domain TD -audience AUD
//	interop-check csi-publish|csi-unpublish -endpoint unix:///csi.sock -kubelet-root DIR
//	            -pod-uid U [-namespace N -pod-name P -service-account S -attr k=v ...]
//	interop-check kubelet-register -socket DIR/<driver>-reg.sock   (node-driver-registrar)
//
// The exit status is 0 when the profile was printed (it may contain ERROR lines), 2 on usage.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	delegated "github.com/spiffe/spire-api-sdk/proto/spire/api/agent/delegatedidentity/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type profile struct{ lines []string }

func (p *profile) add(key string, format string, args ...any) {
	p.lines = append(p.lines, key+" "+fmt.Sprintf(format, args...))
}

func (p *profile) err(key string, err error) {
	p.add(key, "ERROR %s", oneLine(err))
}

func (p *profile) print() {
	sort.Strings(p.lines)
	for _, l := range p.lines {
		fmt.Println(l)
	}
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// grpcErr is the normalized form of a gRPC error: code and message.
func grpcErr(err error) string {
	if err == nil {
		return "OK"
	}
	s, ok := status.FromError(err)
	if !ok {
		return "non-grpc: " + oneLine(err)
	}
	if s.Code() == codes.DeadlineExceeded {
		// Our own deadline: whether the client or the server noticed it first (and so which
		// message came back) is a race, not a property of the agent.
		return s.Code().String()
	}
	return fmt.Sprintf("%s %q", s.Code(), s.Message())
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func keyType(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return "ec-" + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// leafFacts describes an X509-SVID leaf as the X509-SVID standard constrains it.
func leafFacts(p *profile, prefix string, leaf *x509.Certificate, ttl int) {
	p.add(prefix+".leaf.is_ca", "%v", leaf.IsCA)
	p.add(prefix+".leaf.uri_sans", "%d", len(leaf.URIs))
	ku := []string{}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature != 0 {
		ku = append(ku, "digitalSignature")
	}
	if leaf.KeyUsage&x509.KeyUsageKeyEncipherment != 0 {
		ku = append(ku, "keyEncipherment")
	}
	if leaf.KeyUsage&x509.KeyUsageKeyAgreement != 0 {
		ku = append(ku, "keyAgreement")
	}
	if leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		ku = append(ku, "certSign/crlSign")
	}
	p.add(prefix+".leaf.key_usage", "%s", strings.Join(ku, ","))
	eku := []string{}
	for _, e := range leaf.ExtKeyUsage {
		switch e {
		case x509.ExtKeyUsageServerAuth:
			eku = append(eku, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			eku = append(eku, "clientAuth")
		default:
			eku = append(eku, fmt.Sprint(e))
		}
	}
	sort.Strings(eku)
	p.add(prefix+".leaf.ext_key_usage", "%s", strings.Join(eku, ","))
	p.add(prefix+".leaf.key_type", "%s", keyType(leaf.PublicKey))
	p.add(prefix+".leaf.serial_positive", "%v", leaf.SerialNumber.Sign() > 0)
	if ttl > 0 {
		// Lifetimes are compared to the configured TTL: backdating and rounding are allowed
		// (SPIRE backdates NotBefore by 10 s), a lifetime far from the TTL is not.
		life := int(leaf.NotAfter.Sub(leaf.NotBefore).Seconds())
		p.add(prefix+".leaf.lifetime_close_to_ttl", "%v", life >= ttl-5 && life <= ttl+60)
	}
}

func dial(addr string) (*grpc.ClientConn, error) {
	path := strings.TrimPrefix(addr, "unix://")
	return grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"))
}

func withHeader(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
}

func workloadProfile(args []string) int {
	fs := flag.NewFlagSet("workload", flag.ExitOnError)
	sock := fs.String("socket", "", "Workload API address (unix:///path)")
	aud := fs.String("audience", "interop", "JWT-SVID audience")
	ttl := fs.Int("ttl", 0, "expected X509-SVID TTL in seconds (0: do not check)")
	fs.Parse(args)
	if *sock == "" {
		fs.Usage()
		return 2
	}
	p := &profile{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(*sock))
	if err != nil {
		p.err("workload.client", err)
		p.print()
		return 0
	}
	defer client.Close()

	// go-spiffe's own parsing and checks: FetchX509Context fails if anything is malformed.
	xc, err := client.FetchX509Context(ctx)
	if err != nil {
		p.err("workload.x509", err)
	} else {
		p.add("workload.x509.svids", "%d", len(xc.SVIDs))
		if len(xc.SVIDs) > 0 {
			d := xc.DefaultSVID()
			p.add("workload.x509.default_id", "%s", d.ID)
			p.add("workload.x509.chain_len", "%d", len(d.Certificates))
			leafFacts(p, "workload.x509", d.Certificates[0], *ttl)
			_, _, verr := x509svid.Verify(d.Certificates, xc.Bundles)
			p.add("workload.x509.verifies", "%v", verr == nil)
			p.add("workload.x509.key_matches", "%v", keyMatches(d.PrivateKey, d.Certificates[0]))
			hints := []string{}
			for _, s := range xc.SVIDs {
				hints = append(hints, s.ID.String()+"="+s.Hint)
			}
			p.add("workload.x509.ids_hints", "%s", strings.Join(hints, " "))
		}
		tds := []string{}
		for _, b := range xc.Bundles.Bundles() {
			tds = append(tds, fmt.Sprintf("%s:%d", b.TrustDomain(), len(b.X509Authorities())))
		}
		sort.Strings(tds)
		p.add("workload.x509.bundles", "%s", strings.Join(tds, " "))
	}

	// Raw wire facts go-spiffe hides: chain concatenation and the bundle map's keys.
	conn, err := dial(*sock)
	if err == nil {
		defer conn.Close()
		wc := workload.NewSpiffeWorkloadAPIClient(conn)
		st, err := wc.FetchX509SVID(withHeader(ctx), &workload.X509SVIDRequest{})
		if err == nil {
			var m *workload.X509SVIDResponse
			if m, err = st.Recv(); err == nil && len(m.Svids) > 0 {
				certs, _ := x509.ParseCertificates(m.Svids[0].X509Svid)
				p.add("workload.wire.x509_svid_der_certs", "%d", len(certs))
				_, kerr := x509.ParsePKCS8PrivateKey(m.Svids[0].X509SvidKey)
				p.add("workload.wire.key_pkcs8", "%v", kerr == nil)
				bcerts, _ := x509.ParseCertificates(m.Svids[0].Bundle)
				p.add("workload.wire.svid_bundle_der_certs", "%d", len(bcerts))
				keys := []string{}
				for k := range m.FederatedBundles {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				p.add("workload.wire.federated_bundle_keys", "%s", strings.Join(keys, " "))
			}
		}
		if err != nil {
			p.add("workload.wire.x509", "%s", grpcErr(err))
		}
		// Without the security header.
		st, err = wc.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
		if err == nil {
			_, err = st.Recv()
		}
		p.add("workload.error.no_security_header", "%s", grpcErr(err))
		_, err = wc.FetchJWTSVID(withHeader(ctx), &workload.JWTSVIDRequest{})
		p.add("workload.error.jwt_no_audience", "%s", grpcErr(err))
		xb, err := wc.FetchX509Bundles(withHeader(ctx), &workload.X509BundlesRequest{})
		if err == nil {
			var m *workload.X509BundlesResponse
			if m, err = xb.Recv(); err == nil {
				keys := []string{}
				for k, der := range m.Bundles {
					certs, perr := x509.ParseCertificates(der)
					keys = append(keys, fmt.Sprintf("%s:%d:%v", k, len(certs), perr == nil))
				}
				sort.Strings(keys)
				p.add("workload.wire.x509_bundles", "%s", strings.Join(keys, " "))
			}
		}
		if err != nil {
			p.add("workload.wire.x509_bundles", "%s", grpcErr(err))
		}
		jb, err := wc.FetchJWTBundles(withHeader(ctx), &workload.JWTBundlesRequest{})
		if err == nil {
			var m *workload.JWTBundlesResponse
			if m, err = jb.Recv(); err == nil {
				jwksFacts(p, "workload.wire.jwt_bundles", m.Bundles)
			}
		}
		if err != nil {
			p.add("workload.wire.jwt_bundles", "%s", grpcErr(err))
		}
	}

	// JWT-SVID: fetched, then validated against the JWT bundles as a relying party does.
	svid, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: *aud})
	if err != nil {
		p.err("workload.jwt", err)
	} else {
		bundles, err := client.FetchJWTBundles(ctx)
		if err != nil {
			p.err("workload.jwt_bundles", err)
		} else {
			jwtFacts(p, "workload.jwt", svid.Marshal(), bundles, *aud)
		}
	}
	p.print()
	return 0
}

func keyMatches(k crypto.Signer, leaf *x509.Certificate) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := k.Public().(eq)
	return ok && e.Equal(leaf.PublicKey)
}

// jwksFacts: the JWKS map keys and the members each key carries.
func jwksFacts(p *profile, prefix string, bundles map[string][]byte) {
	keys := []string{}
	for k := range bundles {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	p.add(prefix+".keys", "%s", strings.Join(keys, " "))
	for _, td := range keys {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(bundles[td], &doc); err != nil {
			p.err(prefix+"."+td, err)
			continue
		}
		top := []string{}
		for k := range doc {
			top = append(top, k)
		}
		sort.Strings(top)
		p.add(prefix+"."+td+".members", "%s", strings.Join(top, ","))
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		json.Unmarshal(bundles[td], &set)
		fields := map[string]bool{}
		for _, k := range set.Keys {
			names := []string{}
			for n := range k {
				names = append(names, n)
			}
			sort.Strings(names)
			fields[strings.Join(names, ",")] = true
		}
		shapes := []string{}
		for s := range fields {
			shapes = append(shapes, s)
		}
		sort.Strings(shapes)
		p.add(prefix+"."+td+".key_members", "%s", strings.Join(shapes, " "))
		id, err := spiffeid.TrustDomainFromString(td)
		if err == nil {
			_, err = jwtbundle.Parse(id, bundles[td])
		}
		p.add(prefix+"."+td+".go_spiffe_parses", "%v", err == nil)
	}
}

func jwtFacts(p *profile, prefix, token string, bundles jwtbundle.Source, aud string) {
	v, err := jwtsvid.ParseAndValidate(token, bundles, []string{aud})
	if err != nil {
		p.err(prefix+".validates", err)
		return
	}
	p.add(prefix+".validates", "true")
	p.add(prefix+".sub", "%s", v.ID)
	p.add(prefix+".aud", "%s", strings.Join(v.Audience, ","))
	parts := strings.Split(token, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	json.Unmarshal(hdr, &h)
	names := []string{}
	for k, val := range h {
		if k == "kid" {
			names = append(names, "kid")
			continue
		}
		names = append(names, fmt.Sprintf("%s=%v", k, val))
	}
	sort.Strings(names)
	p.add(prefix+".header", "%s", strings.Join(names, ","))
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(body, &c)
	claims := []string{}
	for k := range c {
		claims = append(claims, k)
	}
	sort.Strings(claims)
	p.add(prefix+".claims", "%s", strings.Join(claims, ","))
	if a, ok := c["aud"]; ok {
		p.add(prefix+".aud_json_type", "%T", a)
	}
}

func parseSelectors(list []string) ([]*types.Selector, error) {
	out := []*types.Selector{}
	for _, s := range list {
		t, v, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("selector %q: want type:value", s)
		}
		out = append(out, &types.Selector{Type: t, Value: v})
	}
	return out, nil
}

// firstX509 opens a SubscribeToX509SVIDs stream and returns its first message.
func firstX509(ctx context.Context, c delegated.DelegatedIdentityClient, req *delegated.SubscribeToX509SVIDsRequest) (*delegated.SubscribeToX509SVIDsResponse, error) {
	st, err := c.SubscribeToX509SVIDs(ctx, req)
	if err != nil {
		return nil, err
	}
	return st.Recv()
}

func delegatedProfile(args []string) int {
	fs := flag.NewFlagSet("delegated", flag.ExitOnError)
	admin := fs.String("admin", "", "admin socket address (unix:///path)")
	aud := fs.String("audience", "interop", "JWT-SVID audience")
	ttl := fs.Int("ttl", 0, "expected X509-SVID TTL in seconds (0: do not check)")
	var sels, nomatch listFlag
	fs.Var(&sels, "selector", "type:value of the workload (repeatable)")
	fs.Var(&nomatch, "nomatch-selector", "type:value no entry has (repeatable)")
	fs.Parse(args)
	if *admin == "" || len(sels) == 0 {
		fs.Usage()
		return 2
	}
	selectors, err := parseSelectors(sels)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p := &profile{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := dial(*admin)
	if err != nil {
		p.err("delegated.dial", err)
		p.print()
		return 0
	}
	defer conn.Close()
	c := delegated.NewDelegatedIdentityClient(conn)

	// X.509 bundles first: the SVIDs are verified against them.
	set := x509bundle.NewSet()
	bst, err := c.SubscribeToX509Bundles(ctx, &delegated.SubscribeToX509BundlesRequest{})
	if err == nil {
		var m *delegated.SubscribeToX509BundlesResponse
		if m, err = bst.Recv(); err == nil {
			keys := []string{}
			for k, der := range m.CaCertificates {
				certs, perr := x509.ParseCertificates(der)
				keys = append(keys, fmt.Sprintf("%s:%d:%v", k, len(certs), perr == nil))
				if td, terr := spiffeid.TrustDomainFromString(k); terr == nil && perr == nil {
					set.Add(x509bundle.FromX509Authorities(td, certs))
				}
			}
			sort.Strings(keys)
			p.add("delegated.x509_bundles", "%s", strings.Join(keys, " "))
		}
	}
	if err != nil {
		p.add("delegated.x509_bundles", "%s", grpcErr(err))
	}

	m, err := firstX509(ctx, c, &delegated.SubscribeToX509SVIDsRequest{Selectors: selectors})
	if err != nil {
		p.add("delegated.x509", "%s", grpcErr(err))
	} else {
		p.add("delegated.x509.svids", "%d", len(m.X509Svids))
		p.add("delegated.x509.federates_with", "%s", strings.Join(m.FederatesWith, " "))
		ids := []string{}
		for i, s := range m.X509Svids {
			pre := fmt.Sprintf("delegated.x509.%d", i)
			idStr := "spiffe://" + s.X509Svid.Id.TrustDomain + s.X509Svid.Id.Path
			ids = append(ids, idStr+"="+s.X509Svid.Hint)
			p.add(pre+".id_trust_domain_form", "%v", !strings.Contains(s.X509Svid.Id.TrustDomain, "/"))
			p.add(pre+".id_path_form", "%v", strings.HasPrefix(s.X509Svid.Id.Path, "/"))
			certs := []*x509.Certificate{}
			ok := true
			for _, der := range s.X509Svid.CertChain {
				cs, err := x509.ParseCertificates(der)
				if err != nil || len(cs) != 1 {
					ok = false
				}
				certs = append(certs, cs...)
			}
			p.add(pre+".one_der_cert_per_element", "%v", ok)
			p.add(pre+".chain_len", "%d", len(certs))
			if len(certs) == 0 {
				continue
			}
			p.add(pre+".expires_at_is_leaf_not_after", "%v", s.X509Svid.ExpiresAt == certs[0].NotAfter.Unix())
			leafFacts(p, pre, certs[0], *ttl)
			vid, _, verr := x509svid.Verify(certs, set)
			p.add(pre+".verifies", "%v", verr == nil)
			p.add(pre+".san_is_id", "%v", verr == nil && vid.String() == idStr)
			k, kerr := x509.ParsePKCS8PrivateKey(s.X509SvidKey)
			signer, isSigner := k.(crypto.Signer)
			p.add(pre+".key_pkcs8_matches", "%v", kerr == nil && isSigner && keyMatches(signer, certs[0]))
		}
		p.add("delegated.x509.ids_hints", "%s", strings.Join(ids, " "))
	}

	// A selector set no entry matches: SPIRE answers at once with an empty list and keeps
	// the stream open (no error, no wait).
	if len(nomatch) > 0 {
		nsel, _ := parseSelectors(nomatch)
		qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		st, err := c.SubscribeToX509SVIDs(qctx, &delegated.SubscribeToX509SVIDsRequest{Selectors: nsel})
		var m *delegated.SubscribeToX509SVIDsResponse
		if err == nil {
			m, err = st.Recv()
		}
		if err != nil {
			p.add("delegated.nomatch.first", "%s", grpcErr(err))
		} else {
			p.add("delegated.nomatch.first", "svids=%d within_2s=%v", len(m.X509Svids), time.Since(start) < 2*time.Second)
			// The stream stays open: the next Recv waits until our deadline.
			rctx, rcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			st2, _ := c.SubscribeToX509SVIDs(rctx, &delegated.SubscribeToX509SVIDsRequest{Selectors: nsel})
			_, err = st2.Recv()
			if err == nil {
				_, err = st2.Recv()
			}
			p.add("delegated.nomatch.second_recv", "%s", grpcErr(err))
			rcancel()
		}
		qcancel()
	}

	// Argument errors.
	_, err = firstX509(ctx, c, &delegated.SubscribeToX509SVIDsRequest{})
	p.add("delegated.error.neither_selectors_nor_pid", "%s", grpcErr(err))
	_, err = firstX509(ctx, c, &delegated.SubscribeToX509SVIDsRequest{Selectors: selectors, Pid: int32(os.Getpid())})
	p.add("delegated.error.both_selectors_and_pid", "%s", grpcErr(err))
	_, err = firstX509(ctx, c, &delegated.SubscribeToX509SVIDsRequest{Selectors: []*types.Selector{{Type: "", Value: "x"}}})
	p.add("delegated.error.empty_selector_type", "%s", grpcErr(err))
	_, err = firstX509(ctx, c, &delegated.SubscribeToX509SVIDsRequest{Selectors: []*types.Selector{{Type: "k8s", Value: ""}}})
	p.add("delegated.error.empty_selector_value", "%s", grpcErr(err))
	_, err = c.FetchJWTSVIDs(ctx, &delegated.FetchJWTSVIDsRequest{Selectors: selectors})
	p.add("delegated.error.jwt_no_audience", "%s", grpcErr(err))
	if len(nomatch) > 0 {
		nsel, _ := parseSelectors(nomatch)
		_, err = c.FetchJWTSVIDs(ctx, &delegated.FetchJWTSVIDsRequest{Selectors: nsel, Audience: []string{*aud}})
		p.add("delegated.error.jwt_nomatch", "%s", grpcErr(err))
	}

	// JWT bundles and JWT-SVIDs.
	jset := jwtbundle.NewSet()
	jst, err := c.SubscribeToJWTBundles(ctx, &delegated.SubscribeToJWTBundlesRequest{})
	if err == nil {
		var m *delegated.SubscribeToJWTBundlesResponse
		if m, err = jst.Recv(); err == nil {
			jwksFacts(p, "delegated.jwt_bundles", m.Bundles)
			for k, b := range m.Bundles {
				if td, terr := spiffeid.TrustDomainFromString(k); terr == nil {
					if jb, perr := jwtbundle.Parse(td, b); perr == nil {
						jset.Add(jb)
					}
				}
			}
		}
	}
	if err != nil {
		p.add("delegated.jwt_bundles", "%s", grpcErr(err))
	}
	jr, err := c.FetchJWTSVIDs(ctx, &delegated.FetchJWTSVIDsRequest{Selectors: selectors, Audience: []string{*aud}})
	if err != nil {
		p.add("delegated.jwt", "%s", grpcErr(err))
	} else {
		p.add("delegated.jwt.svids", "%d", len(jr.Svids))
		for i, s := range jr.Svids {
			pre := fmt.Sprintf("delegated.jwt.%d", i)
			jwtFacts(p, pre, s.Token, jset, *aud)
			tok, _ := jwtsvid.ParseInsecure(s.Token, []string{*aud})
			if tok != nil {
				p.add(pre+".expires_at_is_exp", "%v", tok.Expiry.Unix() == s.ExpiresAt)
			}
			p.add(pre+".issued_at_set", "%v", s.IssuedAt > 0)
			p.add(pre+".hint", "%s", s.Hint)
		}
	}
	p.print()
	return 0
}

// firstSVID prints the SPIFFE IDs of the first message that carries an SVID, or the error.
// Used by the suite to wait for an entry to reach an agent.
func firstSVID(args []string) int {
	fs := flag.NewFlagSet("first-svid", flag.ExitOnError)
	admin := fs.String("admin", "", "admin socket address (unix:///path)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	var sels listFlag
	fs.Var(&sels, "selector", "type:value (repeatable)")
	fs.Parse(args)
	selectors, err := parseSelectors(sels)
	if err != nil || *admin == "" {
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := dial(*admin)
	if err != nil {
		fmt.Println(grpcErr(err))
		return 1
	}
	defer conn.Close()
	st, err := delegated.NewDelegatedIdentityClient(conn).SubscribeToX509SVIDs(ctx,
		&delegated.SubscribeToX509SVIDsRequest{Selectors: selectors})
	for err == nil {
		var m *delegated.SubscribeToX509SVIDsResponse
		if m, err = st.Recv(); err == nil && len(m.X509Svids) > 0 {
			for _, s := range m.X509Svids {
				fmt.Printf("spiffe://%s%s\n", s.X509Svid.Id.TrustDomain, s.X509Svid.Id.Path)
			}
			return 0
		}
	}
	fmt.Println(grpcErr(err))
	return 1
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: interop-check workload|delegated|first-svid|readers|jwt-verify|csi-publish|csi-unpublish|kubelet-register [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "workload":
		os.Exit(workloadProfile(os.Args[2:]))
	case "delegated":
		os.Exit(delegatedProfile(os.Args[2:]))
	case "first-svid":
		os.Exit(firstSVID(os.Args[2:]))
	case "readers":
		os.Exit(readers(os.Args[2:]))
	case "jwt-verify":
		os.Exit(jwtVerify(os.Args[2:]))
	case "csi-publish":
		os.Exit(csiCall(os.Args[2:], true))
	case "csi-unpublish":
		os.Exit(csiCall(os.Args[2:], false))
	case "kubelet-register":
		os.Exit(kubeletRegister(os.Args[2:]))
	}
	fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
	os.Exit(2)
}
