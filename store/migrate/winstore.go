package migrate

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pop3svc/pop3svc/store"
)

// WinMailbox is one mailbox of a Windows POP3 Service mail root:
// <root>/<domain>/P3_<mailbox>.mbx holding P3_<name>.eml files. A
// message's UIDL is its name (the file name without P3_ and .eml), and the
// messages are in name order.
type WinMailbox struct {
	Address store.Address
	dir     string
}

// WinMailRoot lists the mailboxes of a Windows POP3 Service mail root,
// by domain and mailbox name. Folders that are not domains or P3_*.mbx
// mailboxes, and names the store would refuse, are returned in skipped.
func WinMailRoot(root string) (boxes []WinMailbox, skipped []string, err error) {
	doms, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range doms {
		if !d.IsDir() {
			continue
		}
		dom, derr := store.CanonicalDomain(d.Name())
		if derr != nil {
			skipped = append(skipped, d.Name())
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, nil, err
		}
		for _, e := range ents {
			n := e.Name()
			if !e.IsDir() || !strings.HasPrefix(strings.ToUpper(n), "P3_") || !strings.HasSuffix(strings.ToLower(n), ".mbx") {
				continue
			}
			a, aerr := store.CanonicalAddress(store.Address{Mailbox: n[3 : len(n)-4], Domain: dom})
			if aerr != nil {
				skipped = append(skipped, filepath.Join(d.Name(), n))
				continue
			}
			boxes = append(boxes, WinMailbox{Address: a, dir: filepath.Join(root, d.Name(), n)})
		}
	}
	slices.SortFunc(boxes, func(a, b WinMailbox) int { return strings.Compare(a.Address.String(), b.Address.String()) })
	return boxes, skipped, nil
}

// Source returns the mailbox as a Source.
func (w WinMailbox) Source() Source { return &winSource{dir: w.dir} }

type winSource struct {
	dir  string
	list []Message
}

func (w *winSource) Close() error { return nil }

func (w *winSource) List(ctx context.Context) ([]Message, error) {
	if w.list != nil {
		return w.list, nil
	}
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && len(n) > 7 && strings.EqualFold(n[:3], "P3_") && strings.EqualFold(n[len(n)-4:], ".eml") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	list := make([]Message, 0, len(names))
	for _, n := range names {
		list = append(list, fileMessage(filepath.Join(w.dir, n), n[3:len(n)-4], -1))
	}
	w.list = list
	return list, nil
}

// String names the mailbox folder.
func (w WinMailbox) String() string { return fmt.Sprintf("%s (%s)", w.Address, w.dir) }

var _ io.Closer = (*winSource)(nil)
