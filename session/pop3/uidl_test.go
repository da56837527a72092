package pop3

import (
	"context"
	"strings"
	"testing"
)

// TestUIDLImported: UIDL answers an imported message's old UIDL, alone
// and in the listing, in the order it was imported.
func TestUIDLImported(t *testing.T) {
	st := testStore(t)
	o := testOptions(st)
	ctx := context.Background()
	a := addr("alice@example.com")
	for _, u := range []string{"00000001505ad6d1", "UID7-1200000000/x%"} {
		if _, err := st.Import(ctx, a, u, strings.NewReader("Subject: old\r\n\r\nold\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	s := login(t, o, "alice@example.com", "tanstaaf with spaces")
	defer s.Close()
	if got := mustOK(t, s, "UIDL 4"); got != "+OK 4 00000001505ad6d1\r\n" {
		t.Fatalf("UIDL 4 = %q", got)
	}
	got := mustOK(t, s, "UIDL")
	if !strings.HasSuffix(got, "\r\n4 00000001505ad6d1\r\n5 UID7-1200000000/x%\r\n.\r\n") {
		t.Fatalf("UIDL = %q", got)
	}
}
