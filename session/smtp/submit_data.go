package smtp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// MaxSubmittedHeader bounds the header section of a submitted message,
// which is read whole to check its From: and add what is missing.
const MaxSubmittedHeader = 256 << 10

var errHeaderTooBig = &Error{Code: 552, Enhanced: [3]int{5, 3, 4}, Text: "Message header section too large"}

// remotes lists the distinct remote recipients of a transaction.
func (t txn) remotes() []string {
	seen := make(map[string]bool)
	var out []string
	for _, rc := range t.rcpts {
		if rc.remote == "" || seen[strings.ToLower(rc.remote)] {
			continue
		}
		seen[strings.ToLower(rc.remote)] = true
		out = append(out, rc.remote)
	}
	return out
}

// readHeader reads the header section, up to and including the empty
// line that ends it (or the end of the message).
func readHeader(br *bufio.Reader) ([]byte, error) {
	var hdr []byte
	for {
		line, err := br.ReadSlice('\n')
		hdr = append(hdr, line...)
		if len(hdr) > MaxSubmittedHeader {
			return nil, errHeaderTooBig
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			return hdr, nil
		}
		if err != nil {
			return nil, err
		}
		if len(line) <= 2 && strings.TrimRight(string(line), "\r\n") == "" {
			return hdr, nil
		}
	}
}

// submissionData receives a submitted message (RFC 6409 §8): every From:
// address must be the user's own or an alias (553 5.7.1 otherwise);
// Message-ID and Date are added when missing (RFC 6409 §8.2, §8.3), and the
// Received header as for any message. Local recipients' copy goes into the
// mail queue, the remote recipients' into the outbound queue, both durable
// before the 250.
func (ss *session) submissionData(r io.Reader) (string, error) {
	t, ok, done := ss.snapshot()
	defer done()
	if !ok {
		return "", errNoRcpts
	}
	br := bufio.NewReaderSize(r, 32<<10)
	hdr, err := readHeader(br)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return "", err
		}
		ss.log.Info("message data cut off", "err", err)
		return "", errTemp
	}
	h := hdr
	if !bytes.HasSuffix(h, []byte("\n\n")) && !bytes.HasSuffix(h, []byte("\r\n\r\n")) {
		h = append(append([]byte(nil), h...), "\r\n\r\n"...)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(h))
	if err != nil {
		return "", errBadHeader
	}
	froms := msg.Header["From"]
	if len(froms) == 0 {
		return "", errNoFrom
	}
	if len(froms) > 1 {
		return "", errBadHeader // RFC 5322 §3.6: exactly one From field
	}
	list, err := mail.ParseAddressList(froms[0])
	if err != nil || len(list) == 0 {
		return "", errBadHeader
	}
	for _, a := range list {
		if !ss.mayUse(a.Address) {
			mSubmitFromHdr.Inc()
			ss.log.Warn("message refused: From: address not the user's", "from", sanitize(a.Address))
			return "", errNotYourFrom
		}
	}
	o := ss.s.o()
	var add strings.Builder
	if msg.Header.Get("Message-ID") == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		fmt.Fprintf(&add, "Message-ID: <%s.%d@%s>\r\n", hex.EncodeToString(b[:]), time.Now().UnixNano(), o.Hostname)
	}
	if msg.Header.Get("Date") == "" {
		add.WriteString("Date: " + time.Now().Format(time.RFC1123Z) + "\r\n")
	}
	local, remote := t.distinct(nil), t.remotes()
	sub := ss.s.subOpts()
	var qs []store.Queue
	if len(local) > 0 {
		qs = append(qs, ss.s.q)
	}
	if len(remote) > 0 {
		if sub.Outbound == nil {
			return "", errRelayDenied
		}
		qs = append(qs, sub.Outbound)
	}
	sps, _, err := ss.spoolTo(qs, ss.received(t)+add.String(), io.MultiReader(bytes.NewReader(hdr), br))
	if err != nil {
		return "", err
	}
	defer abortAll(sps)
	var ids []string
	if len(local) > 0 {
		id, err := ss.commit(sps[0], t, local)
		if err != nil {
			return "", err
		}
		ids = append(ids, id)
		sps = sps[1:]
	}
	if len(remote) > 0 {
		env := store.Envelope{
			From:     t.from,
			Rcpts:    remote,
			Received: time.Now(),
			Helo:     sanitize(ss.conn.Hostname()),
			Remote:   ss.remote,
		}
		id, err := sps[0].Commit(env)
		if err != nil {
			mDataError.Inc()
			if len(ids) > 0 {
				// The local copies are queued already: a retry by the
				// client will deliver them twice.
				ss.log.Error("local copies queued but the outbound copy failed", "queue_id", ids[0], "err", err)
			}
			return "", fmt.Errorf("cannot queue message for outbound delivery: %w", err)
		}
		ss.log.Info("message queued for outbound delivery", "queue_id", id, "from", t.from, "rcpts", len(remote))
		sub.OutboundNotify(id)
		ids = append(ids, id)
	}
	ss.submissionDone()
	return strings.Join(ids, " "), nil
}
