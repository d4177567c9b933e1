// SPDX-License-Identifier: Apache-2.0

package main

// jwt-verify: validates a JWT-SVID file served by svidfs against the JWKS file svidfs serves
// beside it, as a relying party using go-spiffe would, and prints `sub aud`.

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

func jwtVerify(args []string) int {
	fs := flag.NewFlagSet("jwt-verify", flag.ExitOnError)
	token := fs.String("token", "", "file holding the JWT-SVID")
	jwks := fs.String("jwks", "", "JWKS file of the trust domain")
	td := fs.String("trust-domain", "", "trust domain of the JWKS")
	aud := fs.String("audience", "", "expected audience")
	fs.Parse(args)
	if *token == "" || *jwks == "" || *td == "" || *aud == "" {
		fs.Usage()
		return 2
	}
	tok, err := os.ReadFile(*token)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	id, err := spiffeid.TrustDomainFromString(*td)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	b, err := jwtbundle.Load(id, *jwks)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	svid, err := jwtsvid.ParseAndValidate(strings.TrimSpace(string(tok)), b, []string{*aud})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println(svid.ID, strings.Join(svid.Audience, ","))
	return 0
}
