package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/store"
)

// Exit statuses of deliver (sysexits.h), which an MTA reads: 67 bounces
// as an unknown user, 75 makes it try again later.
const (
	exUsage     = 64 // EX_USAGE: a wrong command line
	exNoUser    = 67 // EX_NOUSER: no such mailbox or domain
	exUnavail   = 69 // EX_UNAVAILABLE: the LMTP server (-lmtp) refused the message for good for another reason
	exCantCreat = 73 // EX_CANTCREAT: the store refuses the message for good (over quota, too large)
	exIOErr     = 74 // EX_IOERR: the message could not be read from its input
	exTempFail  = 75 // EX_TEMPFAIL: the store failed now (disk, configuration, file system); try again
)

// Bounds of deliver -lmtp: connecting, each reply to a command, and the
// replies after the message's data (RFC 5321 §4.5.3.2 asks clients to
// wait 5 and 10 minutes).
const (
	LMTPDialTimeout    = 30 * time.Second
	LMTPCommandTimeout = 5 * time.Minute
	LMTPDataTimeout    = 10 * time.Minute
)

// MaxHeaderValue bounds -return-path and -delivered-to.
const MaxHeaderValue = 900

// deliverFlags are deliver's header options.
type deliverFlags struct {
	returnPath  string // adds Return-Path: <...>
	deliveredTo string // adds Delivered-To: ...
	lmtp        string // HOST:PORT: hand the message to pop3d's LMTP listener instead of the store
}

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

// readErr marks an error of the message's input.
type readErr struct{ error }

func (e readErr) Unwrap() error { return e.error }

type inputReader struct{ r io.Reader }

func (i inputReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = readErr{err}
	}
	return n, err
}

func (c *cli) deliver() error {
	if err := c.wantArgs(1, 2, "MAILBOX@DOMAIN [FILE] [-return-path ADDR] [-delivered-to ADDR] [-lmtp HOST:PORT]"); err != nil {
		return exitWith(exUsage, err)
	}
	for _, v := range []string{c.dlv.returnPath, c.dlv.deliveredTo} {
		if strings.ContainsAny(v, "\r\n\x00") || len(v) > MaxHeaderValue {
			return exitWith(exUsage, usagef("-return-path and -delivered-to take one line of at most %d octets", MaxHeaderValue))
		}
	}
	var in io.Reader = c.stdin
	if len(c.args) == 2 && c.args[1] != "-" {
		f, err := os.Open(c.args[1])
		if err != nil {
			return exitWith(exIOErr, fmt.Errorf("cannot open the message: %w", err))
		}
		defer f.Close()
		in = f
	}
	if c.dlv.lmtp != "" {
		return c.deliverLMTP(in)
	}
	st, cfg, err := c.openStore()
	if err != nil {
		return exitWith(exTempFail, err)
	}
	defer st.Close()
	a, err := parseMailbox(c.args[0], cfg)
	if err != nil {
		return exitWith(exNoUser, err)
	}
	msg, err := deliveryMessage(in, c.dlv)
	if err != nil {
		return exitWith(exIOErr, fmt.Errorf("cannot read the message: %w", err))
	}
	uid, err := st.Deliver(context.Background(), a, msg)
	var re readErr
	switch {
	case errors.Is(err, store.ErrNoSuchMailbox), errors.Is(err, store.ErrNoSuchDomain), errors.Is(err, store.ErrInvalidName):
		return exitWith(exNoUser, err)
	case errors.Is(err, store.ErrOverQuota):
		return exitWith(exCantCreat, fmt.Errorf("mailbox %s is over its quota: the message was not delivered", a))
	case errors.Is(err, store.ErrMessageTooLarge):
		return exitWith(exCantCreat, fmt.Errorf("the message is larger than smtp.max_message_size (%s): it was not delivered", cfg.SMTP.MaxMessageSize))
	case errors.As(err, &re):
		return exitWith(exIOErr, fmt.Errorf("cannot read the message: %w", err))
	case err != nil:
		return exitWith(exTempFail, err)
	}
	c.say(map[string]any{"delivered": a.String(), "uid": uid}, "%s", uid)
	return nil
}

// deliverLMTP hands the message to an LMTP server (pop3d's
// smtp.lmtp_listen), which writes it into the store as the service's own
// user: the program needs no access to the configuration or the mail
// root, so an MTA may run it as any local user. -return-path is the
// envelope sender (pop3d adds the Return-Path field). The replies map to
// sysexits: 4xx and a server that cannot be reached 75, an unknown
// mailbox or domain 67, over quota or too large 73, any other 5xx 69.
func (c *cli) deliverLMTP(in io.Reader) error {
	rcpt := c.args[0]
	if _, _, ok := strings.Cut(rcpt, "@"); !ok || strings.ContainsAny(rcpt, "<> \t\r\n\x00") {
		return exitWith(exNoUser, fmt.Errorf("%q is not MAILBOX@DOMAIN", rcpt))
	}
	from := strings.TrimSuffix(strings.TrimPrefix(c.dlv.returnPath, "<"), ">")
	if strings.ContainsAny(from, "<> \t") {
		return exitWith(exUsage, usagef("-return-path %q is not an address", c.dlv.returnPath))
	}
	msg, err := deliveryMessage(in, deliverFlags{deliveredTo: c.dlv.deliveredTo})
	if err != nil {
		return exitWith(exIOErr, fmt.Errorf("cannot read the message: %w", err))
	}
	conn, err := net.DialTimeout("tcp", c.dlv.lmtp, LMTPDialTimeout)
	if err != nil {
		return exitWith(exTempFail, fmt.Errorf("cannot reach the LMTP server: %w", err))
	}
	cl := gosmtp.NewClientLMTP(conn)
	defer cl.Close()
	cl.CommandTimeout = LMTPCommandTimeout
	cl.SubmissionTimeout = LMTPDataTimeout
	if err := cl.Hello("localhost"); err != nil {
		return lmtpExit("LHLO", err)
	}
	if err := cl.Mail(from, nil); err != nil {
		return lmtpExit("MAIL FROM", err)
	}
	if err := cl.Rcpt(rcpt, nil); err != nil {
		return lmtpExit("RCPT TO", err)
	}
	w, err := cl.Data()
	if err != nil {
		return lmtpExit("DATA", err)
	}
	if _, err := io.Copy(w, msg); err != nil {
		var re readErr
		if errors.As(err, &re) {
			return exitWith(exIOErr, fmt.Errorf("cannot read the message: %w", err))
		}
		return lmtpExit("the message's data", err)
	}
	resp, err := w.CloseWithLMTPResponse()
	if err != nil {
		var le gosmtp.LMTPDataError
		if errors.As(err, &le) {
			for _, e := range le {
				return lmtpExit("the message", e)
			}
		}
		return lmtpExit("the message", err)
	}
	_ = cl.Quit()
	text := ""
	if r := resp[rcpt]; r != nil {
		text = r.StatusText
	}
	c.say(map[string]any{"delivered": rcpt, "lmtp": text}, "%s", text)
	return nil
}

// lmtpExit maps an LMTP client error to deliver's exit status.
func lmtpExit(step string, err error) error {
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) {
		return exitWith(exTempFail, fmt.Errorf("LMTP, %s: %w", step, err))
	}
	ec := se.EnhancedCode
	reply := fmt.Sprintf("%d %s", se.Code, se.Message)
	if ec[0] > 0 {
		reply = fmt.Sprintf("%d %d.%d.%d %s", se.Code, ec[0], ec[1], ec[2], se.Message)
	}
	err = fmt.Errorf("LMTP server refused %s: %s", step, reply)
	switch {
	case se.Code < 500:
		return exitWith(exTempFail, err)
	case step == "MAIL FROM":
		// The sender refused: nothing to do with the mailbox.
		return exitWith(exUnavail, err)
	case ec[1] == 1 || (ec[1] == 7 && ec[2] == 1 && step == "RCPT TO"):
		// 5.1.x: a bad destination; 5.7.1 at RCPT: a domain not served.
		return exitWith(exNoUser, err)
	case ec[1] == 2 || ec[1] == 3:
		// 5.2.x: the mailbox (quota); 5.3.4: too large.
		return exitWith(exCantCreat, err)
	}
	return exitWith(exUnavail, err)
}

// deliveryMessage drops a leading mbox "From " line and puts the
// Delivered-To and Return-Path fields the options ask for on top.
func deliveryMessage(in io.Reader, f deliverFlags) (io.Reader, error) {
	br := bufio.NewReader(inputReader{in})
	head, err := br.Peek(5)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	if string(head) == "From " {
		for { // the whole line, however long
			_, err := br.ReadSlice('\n')
			if err == nil || errors.Is(err, io.EOF) {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
		}
	}
	var top strings.Builder
	if f.returnPath != "" {
		rp := strings.TrimSuffix(strings.TrimPrefix(f.returnPath, "<"), ">")
		top.WriteString("Return-Path: <" + rp + ">\r\n")
	}
	if f.deliveredTo != "" {
		top.WriteString("Delivered-To: " + f.deliveredTo + "\r\n")
	}
	return io.MultiReader(strings.NewReader(top.String()), br), nil
}
