package main

import (
	"strings"
	"testing"
	"time"
)

func TestPairFromHash(t *testing.T) {
	for _, c := range []struct {
		hash, pop3d, dovecot string
		auth                 []string
	}{
		{"{SHA512-CRYPT}$6$VNc/ZeDnsGo3/0.R$QzCH", "sha512-crypt rounds=5000", "SHA512-CRYPT rounds=5000",
			[]string{`hash = "sha512-crypt"`, "sha512_rounds = 5000", `cache_ttl = "10m0s"`}},
		{"{SHA512-CRYPT}$6$rounds=20000$salt$key", "sha512-crypt rounds=20000", "SHA512-CRYPT rounds=20000",
			[]string{"sha512_rounds = 20000"}},
		{"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$uESf77HQ$ogyy", "argon2id m=65536KiB t=3 p=1", "ARGON2ID m=65536KiB t=3 p=1",
			[]string{`hash = "argon2id"`, "argon2_time = 3", `argon2_memory = "65536KB"`, "argon2_threads = 1"}},
	} {
		p, err := pairFromHash(c.hash, 10*time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", c.hash, err)
		}
		if p.Pop3dDesc != c.pop3d || p.DovecotDesc != c.dovecot {
			t.Errorf("%s: pop3d %q Dovecot %q, want %q and %q", c.hash, p.Pop3dDesc, p.DovecotDesc, c.pop3d, c.dovecot)
		}
		for _, line := range c.auth {
			if !strings.Contains(p.Pop3dAuth, line+"\n") {
				t.Errorf("%s: pop3d [auth] lacks %q:\n%s", c.hash, line, p.Pop3dAuth)
			}
		}
		if s := p.String(); !strings.Contains(s, c.pop3d) || !strings.Contains(s, c.dovecot) || !strings.Contains(s, "auth_cache_size 10M") {
			t.Errorf("report line %q does not name both schemes and the cache", s)
		}
	}
	for _, bad := range []string{"{PLAIN}x", "{ARGON2ID}$argon2id$v=19$m=x,t=3,p=1$s$k", "{ARGON2ID}$argon2id$v=19", "{SHA512-CRYPT}$6$rounds=z$s$k"} {
		if _, err := pairFromHash(bad, time.Minute); err == nil {
			t.Errorf("%q was paired", bad)
		}
	}
}
