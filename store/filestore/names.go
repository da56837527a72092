package filestore

import "github.com/pop3svc/pop3svc/store/uid"

// UIDLen is the length of a message name's digits and of a UID.
const UIDLen = uid.Len

// isUID reports whether s is 26 ASCII digits.
func isUID(s []byte) bool { return uid.Valid(s) }
