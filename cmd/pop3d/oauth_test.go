package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/session/auth/jwttest"
)

// signJWT makes an RS256 (RSA key) or ES256 (P-256 key) token.
func signJWT(t *testing.T, key crypto.Signer, kid string, claims map[string]any) string {
	t.Helper()
	tok, err := jwttest.Sign(key, kid, jwttest.Alg(key), claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// curl --oauth2-bearer against POP3: OAUTHBEARER and XOAUTH2 with tokens
// the test signs with keys it makes, published to pop3d as a JWKS file.
func TestOAuthWithCurl(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jwttest.JWKS(map[string]crypto.PublicKey{"rsa-1": &rsaKey.PublicKey, "ec-1": &ecKey.PublicKey})
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksPath, set, 0o600); err != nil {
		t.Fatal(err)
	}
	c := integrationConfig(t, "", "", mailbox(2, 300))
	c.Tables = fmt.Sprintf("[oauth]\nissuer = \"https://idp.test\"\naudience = \"pop3.test\"\njwks_file = %q\nclaim = \"email\"\n", jwksPath)
	in := pop3dtest.Start(t, c)
	url := "pop3://" + in.POP3 + "/1"
	user := testAddr.String() + ":"
	claims := func(mod map[string]any) map[string]any {
		m := map[string]any{"iss": "https://idp.test", "aud": "pop3.test", "exp": time.Now().Add(time.Hour).Unix(), "email": testAddr.String()}
		for k, v := range mod {
			m[k] = v
		}
		return m
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name, mech, token string
		ok                bool
	}{
		{"OAUTHBEARER RS256", "AUTH=OAUTHBEARER", signJWT(t, rsaKey, "rsa-1", claims(nil)), true},
		{"OAUTHBEARER ES256", "AUTH=OAUTHBEARER", signJWT(t, ecKey, "ec-1", claims(nil)), true},
		{"XOAUTH2", "AUTH=XOAUTH2", signJWT(t, rsaKey, "rsa-1", claims(nil)), true},
		{"expired", "AUTH=OAUTHBEARER", signJWT(t, rsaKey, "rsa-1", claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), false},
		{"wrong audience", "AUTH=OAUTHBEARER", signJWT(t, rsaKey, "rsa-1", claims(map[string]any{"aud": "imap.test"})), false},
		{"wrongly signed", "AUTH=OAUTHBEARER", signJWT(t, other, "rsa-1", claims(nil)), false},
		{"XOAUTH2 expired", "AUTH=XOAUTH2", signJWT(t, ecKey, "ec-1", claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCurl(t, "-v", "--user", user, "--oauth2-bearer", tc.token, "--login-options", tc.mech, url)
			if tc.ok {
				if err != nil || !strings.Contains(out, "Subject: message 1") {
					t.Fatalf("curl: %v\n%.2000s", err, out)
				}
				return
			}
			// RFC 7628 section 3.2.2: the error JSON as a challenge, then -ERR [AUTH].
			if err == nil || !strings.Contains(out, "< -ERR [AUTH]") || strings.Contains(out, "Subject: message 1") {
				t.Fatalf("curl with a bad token: %v\n%.2000s", err, out)
			}
			if want := "< + " + base64.StdEncoding.EncodeToString([]byte(`{"status":"invalid_token"}`)); !strings.Contains(out, want) {
				t.Fatalf("no RFC 7628 error JSON (%q) in:\n%.2000s", want, out)
			}
		})
	}
}
