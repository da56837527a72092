package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Deleting a mailbox, a queued message or a Badmail message takes two
// steps: the first POST answers a page that says what will be lost and
// carries a confirmation token; only a second POST with that token
// deletes. The token is an HMAC, under a per-process key, of what is
// deleted and until when the token is good, so it cannot be made without
// the first step, nor used for anything else.

// ConfirmTTL is how long a confirmation page stays good.
const ConfirmTTL = 10 * time.Minute

// confirmToken returns the token that confirms deleting target (e.g.
// "mailbox alice@example.com") until expires.
func (c *Console) confirmToken(target string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	m := hmac.New(sha256.New, c.confirmKey)
	m.Write([]byte(target + "\x00" + exp))
	return exp + "." + hex.EncodeToString(m.Sum(nil))
}

// confirmed reports whether tok confirms deleting target now.
func (c *Console) confirmed(target, tok string, now time.Time) bool {
	exp, _, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.After(time.Unix(unix, 0)) {
		return false
	}
	want := c.confirmToken(target, time.Unix(unix, 0))
	return subtle.ConstantTimeCompare([]byte(want), []byte(tok)) == 1
}

// confirmView is the confirmation page's part of a view.
type confirmView struct {
	Action   string   // the form's action URL
	Question string   // "Delete mailbox alice@example.com?"
	Facts    []string // what will be lost
	Fields   []field  // hidden fields repeated from the first step
	Token    string
	Cancel   string // where "Cancel" leads
}

type field struct{ Name, Value string }
