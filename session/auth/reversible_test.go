package auth

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pop3svc/pop3svc/session"
)

// NoReversible takes APOP, CRAM-MD5 and the Extra mechanisms away, even
// from mailboxes whose records still hold the secrets they need, and
// leaves PLAIN, LOGIN and SCRAM.
func TestNoReversibleOffersNoChallenges(t *testing.T) {
	a, _ := newAuth(t)
	a.SCRAM = func() bool { return true }
	ctx := context.Background()
	ts := "<1896.697170952@dbc.mtview.ca.us>"
	good := "c4c9334bac560ecc979e58001b3e22fb" // RFC 1939's example: mrose's secret
	if _, err := a.APOP(ctx, "mrose", ts, good); err != nil {
		t.Fatalf("APOP with reversible secrets = %v", err)
	}
	a.NoReversible = true
	if _, err := a.APOP(ctx, "mrose", ts, good); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("APOP without reversible secrets = %v, want ErrAuthFailed", err)
	}
	cb := &session.ChannelBinding{Exporter: make([]byte, 32)}
	want := []string{"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}
	if got := a.AllMechanisms(true, false, cb); !slices.Equal(got, want) {
		t.Fatalf("AllMechanisms = %v, want %v", got, want)
	}
	for _, m := range []string{"CRAM-MD5", "NTLM"} {
		if _, ok := a.Start(m, true, false, cb); ok {
			t.Errorf("Start(%s) without reversible secrets succeeded", m)
		}
	}
	for _, m := range want {
		if _, ok := a.Start(m, true, false, cb); !ok {
			t.Errorf("Start(%s) refused", m)
		}
	}
	if _, ok := a.Start("SCRAM-SHA-256-PLUS", false, false, nil); ok {
		t.Error("Start(SCRAM-SHA-256-PLUS) without a channel binding succeeded")
	}
}
