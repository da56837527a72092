package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pop3svc/pop3svc/store"
)

// Exit statuses of deliver (sysexits.h), which an MTA reads: 67 bounces
// as an unknown user, 75 makes it try again later.
const (
	exUsage     = 64 // EX_USAGE: a wrong command line
	exNoUser    = 67 // EX_NOUSER: no such mailbox or domain
	exCantCreat = 73 // EX_CANTCREAT: the store refuses the message for good (over quota, too large)
	exIOErr     = 74 // EX_IOERR: the message could not be read from its input
	exTempFail  = 75 // EX_TEMPFAIL: the store failed now (disk, configuration, file system); try again
)

// MaxHeaderValue bounds -return-path and -delivered-to.
const MaxHeaderValue = 900

// deliverFlags are deliver's header options.
type deliverFlags struct {
	returnPath  string // adds Return-Path: <...>
	deliveredTo string // adds Delivered-To: ...
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
	if err := c.wantArgs(1, 2, "MAILBOX@DOMAIN [FILE] [-return-path ADDR] [-delivered-to ADDR]"); err != nil {
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
