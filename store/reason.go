package store

import (
	"errors"
	"strings"
)

// Reason returns err's message as the one line shown to an operator: a
// naming error loses its "invalid name: " prefix so that the rule broken
// comes first, and line breaks are folded.
func Reason(err error) string {
	msg := err.Error()
	if errors.Is(err, ErrInvalidName) {
		if i := strings.Index(msg, ErrInvalidName.Error()+": "); i >= 0 {
			msg = msg[i+len(ErrInvalidName.Error())+2:]
		}
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " ; ")), " ")
}
