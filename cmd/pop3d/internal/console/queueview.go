package console

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// The queue and Badmail viewer. It works through store.Queue only (and
// the optional store.QueueSchedule and store.BadmailAdmin), so any queue
// behind that interface is shown the same way.

// Viewer limits.
const (
	// ConsoleQueuePerPage is the number of queued messages, and of
	// Badmail messages, listed per page.
	ConsoleQueuePerPage = 50
	// ConsoleMaxHeader is the most of a message's header shown, in octets.
	ConsoleMaxHeader = 64 << 10
)

// queueRow is one queued message in the list.
type queueRow struct {
	ID       string
	Link     string // its page
	Busy     bool   // locked by a delivery attempt now: nothing more is known
	From     string
	Rcpts    int
	Pending  int // recipients neither delivered nor failed
	Size     int64
	Received time.Time
	Next     time.Time // next attempt; zero: at the next queue scan
	Attempts int
}

// badRow is one Badmail message in the list.
type badRow struct {
	ID     string
	Reason string // the first line of its reason
}

// messageView is one queued or Badmail message.
type messageView struct {
	Kind      string // "queue" or "badmail"
	Queue     string // the queue's name when not the inbound queue: "outbound"
	ID        string
	Busy      bool
	Env       store.Envelope
	Rcpts     []rcptRow
	Size      int64
	Next      time.Time
	Attempts  int
	Reason    string // Badmail: the reason file
	Header    string
	Truncated bool // the header is longer than ConsoleMaxHeader
	CanRetry  bool
	CanDelete bool
}

type rcptRow struct {
	Addr  string
	State string
}

// pager is the paging of a list.
type pager struct {
	Page, Pages, Total int
	From, To           int // 1-based numbers of the first and last row shown
	Prev, Next         string
}

// paginate returns the bounds of page (1-based) of n rows, per rows a page;
// link makes the URL of another page.
func paginate(n, page, per int, link func(page int) string) (lo, hi int, p pager) {
	p.Total = n
	p.Pages = max(1, (n+per-1)/per)
	p.Page = min(max(page, 1), p.Pages)
	lo = (p.Page - 1) * per
	hi = min(lo+per, n)
	if n > 0 {
		p.From, p.To = lo+1, hi
	}
	if p.Page > 1 {
		p.Prev = link(p.Page - 1)
	}
	if p.Page < p.Pages {
		p.Next = link(p.Page + 1)
	}
	return lo, hi, p
}

func pageArg(r *http.Request) int {
	var n int
	fmt.Sscanf(r.FormValue("page"), "%d", &n)
	return n
}

// errUnknownQueue: a queue name the console does not know.
var errUnknownQueue = errors.New("no such queue")

// queueNamed returns the queue of a name as the query parameter "queue"
// gives it: "" or store.QueueInbound for the inbound queue,
// store.QueueOutbound for the outbound queue when there is one.
func (c *Console) queueNamed(name string) (store.Queue, error) {
	switch {
	case name == "" || name == store.QueueInbound:
		return c.opts.Queue, nil
	case name == store.QueueOutbound && c.opts.Outbound != nil:
		return c.opts.Outbound, nil
	}
	if len(name) > 32 {
		name = name[:32] + "…"
	}
	return nil, fmt.Errorf("%w %q: the queues are %s and %s", errUnknownQueue, name, store.QueueInbound, store.QueueOutbound)
}

// queueArg is the queue name of a request's query, "" for the inbound
// queue, and the suffix that names it in a URL.
func queueArg(r *http.Request) (name, suffix string) {
	name = r.URL.Query().Get("queue")
	if name == store.QueueInbound {
		name = ""
	}
	if name != "" {
		suffix = "?queue=" + url.QueryEscape(name)
	}
	return name, suffix
}

// entryTarget names a queue entry in messages, audit lines and
// confirmation tokens.
func entryTarget(qname, id string) string {
	if qname == store.QueueOutbound {
		return "outbound message " + id
	}
	return "queued message " + id
}

func (c *Console) queuePage(w http.ResponseWriter, r *http.Request) {
	var opage int
	fmt.Sscanf(r.FormValue("opage"), "%d", &opage)
	v := c.queueView(pageArg(r), opage)
	c.render(w, http.StatusOK, "queue", v)
}

// queueView lists a page of the queue and of Badmail, and a page (opage)
// of the outbound queue.
func (c *Console) queueView(page, opage int) *view {
	v := c.base("Queue and Badmail", "queue")
	q := c.opts.Queue
	page, opage = max(page, 1), max(opage, 1)
	link := func(page, opage int) string {
		s := fmt.Sprintf("/console/queue?page=%d", page)
		if opage > 1 {
			s += fmt.Sprintf("&opage=%d", opage)
		}
		return s
	}
	var err error
	v.QueueRows, v.QueuePager, err = listQueue(q, "", page, func(n int) string { return link(n, opage) })
	if err != nil {
		v.Error = store.Reason(err)
	}
	if c.opts.Outbound != nil {
		v.HasOutbound = true
		v.OutRows, v.OutPager, err = listQueue(c.opts.Outbound, store.QueueOutbound, opage, func(n int) string { return link(page, n) + "#outbound" })
		if err != nil && v.Error == "" {
			v.Error = store.Reason(err)
		}
	}
	bad, err := q.Badmail()
	if err != nil && v.Error == "" {
		v.Error = store.Reason(err)
	}
	blo, bhi, bp := paginate(len(bad), page, ConsoleQueuePerPage, func(n int) string { return link(n, opage) })
	v.BadPager = bp
	for _, id := range bad[blo:bhi] {
		reason, err := q.BadmailReason(id)
		if err != nil {
			reason = "(" + store.Reason(err) + ")"
		}
		first, _, _ := strings.Cut(reason, "\n")
		v.BadRows = append(v.BadRows, badRow{ID: id, Reason: strings.TrimPrefix(first, "Reason: ")})
	}
	return v
}

// listQueue lists a page of a queue; qname is its name in links, "" for
// the inbound queue.
func listQueue(q store.Queue, qname string, page int, link func(int) string) ([]queueRow, pager, error) {
	ids, lerr := q.List()
	lo, hi, p := paginate(len(ids), page, ConsoleQueuePerPage, link)
	var rows []queueRow
	for _, id := range ids[lo:hi] {
		row := queueRow{ID: id, Link: "/console/queue/" + id}
		if qname != "" {
			row.Link += "?queue=" + qname
		}
		e, err := q.Lock(id)
		switch {
		case errors.Is(err, store.ErrQueueBusy):
			row.Busy = true
		case errors.Is(err, store.ErrQueueNotFound):
			continue // delivered since the listing
		case err != nil:
			row.From = "(" + store.Reason(err) + ")"
		default:
			env := e.Envelope()
			row.From, row.Rcpts, row.Received = env.From, len(env.Rcpts), env.Received
			for _, st := range e.Rcpts() {
				if !st.Resolved() {
					row.Pending++
				}
			}
			row.Size, _ = e.Size()
			if s, ok := e.(store.QueueSchedule); ok {
				row.Next, row.Attempts = s.NextAttempt()
			}
			e.Close()
		}
		rows = append(rows, row)
	}
	return rows, p, lerr
}

// readHeader reads a message's header (up to the blank line), at most
// ConsoleMaxHeader octets of it.
func readHeader(rc io.Reader) (string, bool) {
	br := bufio.NewReader(io.LimitReader(rc, ConsoleMaxHeader+1))
	var b strings.Builder
	for {
		l, err := br.ReadString('\n')
		if strings.TrimRight(l, "\r\n") == "" && (err == nil || l != "") {
			break
		}
		b.WriteString(l)
		if b.Len() > ConsoleMaxHeader {
			s := b.String()
			return s[:ConsoleMaxHeader], true
		}
		if err != nil {
			break
		}
	}
	return b.String(), false
}

func (c *Console) queueEntryPage(w http.ResponseWriter, r *http.Request) {
	qname, _ := queueArg(r)
	v, err := c.entryView(qname, r.PathValue("id"))
	code := http.StatusOK
	if err != nil {
		v.Error, code = store.Reason(err), queueStatus(err)
	}
	c.render(w, code, "message", v)
}

func (c *Console) badmailPage(w http.ResponseWriter, r *http.Request) {
	v, err := c.badmailView(r.PathValue("id"))
	code := http.StatusOK
	if err != nil {
		v.Error, code = store.Reason(err), queueStatus(err)
	}
	c.render(w, code, "message", v)
}

func queueStatus(err error) int {
	switch {
	case errors.Is(err, store.ErrQueueNotFound), errors.Is(err, store.ErrQueueBadID), errors.Is(err, errUnknownQueue):
		return http.StatusNotFound
	case errors.Is(err, store.ErrQueueBusy):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// entryView shows one message of the queue named qname ("" for the
// inbound queue); a message under a delivery attempt is shown as busy.
func (c *Console) entryView(qname, id string) (*view, error) {
	target := entryTarget(qname, id)
	v := c.base(strings.ToUpper(target[:1])+target[1:], "queue")
	m := &messageView{Kind: "queue", Queue: qname, ID: id}
	v.Message = m
	q, err := c.queueNamed(qname)
	if err != nil {
		m.Queue = ""
		return v, err
	}
	if !store.ValidQueueID(id) {
		return v, fmt.Errorf("%w: %q", store.ErrQueueBadID, id)
	}
	e, err := q.Lock(id)
	if errors.Is(err, store.ErrQueueBusy) {
		m.Busy = true
		return v, nil
	}
	if err != nil {
		return v, err
	}
	defer e.Close()
	m.CanDelete = true
	m.Env = e.Envelope()
	for i, st := range e.Rcpts() {
		row := rcptRow{Addr: m.Env.Rcpts[i], State: "waiting"}
		switch {
		case st.Done:
			row.State = "delivered, UID " + st.UID
		case st.Failed:
			row.State = "failed " + st.Status + " " + st.Reason
		}
		m.Rcpts = append(m.Rcpts, row)
	}
	m.Size, _ = e.Size()
	if s, ok := e.(store.QueueSchedule); ok {
		m.Next, m.Attempts = s.NextAttempt()
		m.CanRetry = true
	}
	rc, err := e.Open()
	if err != nil {
		return v, err
	}
	defer rc.Close()
	m.Header, m.Truncated = readHeader(rc)
	return v, nil
}

// badmailView shows one Badmail message.
func (c *Console) badmailView(id string) (*view, error) {
	v := c.base("Badmail message "+id, "queue")
	m := &messageView{Kind: "badmail", ID: id}
	v.Message = m
	if !store.ValidQueueID(id) {
		return v, fmt.Errorf("%w: %q", store.ErrQueueBadID, id)
	}
	reason, err := c.opts.Queue.BadmailReason(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("badmail message %s: %w", id, store.ErrQueueNotFound)
		}
		return v, err
	}
	m.Reason = reason
	admin, ok := c.opts.Queue.(store.BadmailAdmin)
	if !ok {
		return v, nil
	}
	m.CanRetry, m.CanDelete = true, true
	rc, err := admin.OpenBadmail(id)
	if err != nil {
		return v, err
	}
	defer rc.Close()
	m.Header, m.Truncated = readHeader(rc)
	return v, nil
}

// queueAction retries or deletes a message of the inbound or the
// outbound queue.
func (c *Console) queueAction(r *http.Request) (string, outcome, *view) {
	id := r.PathValue("id")
	action := r.PostForm.Get("action")
	qname, suffix := queueArg(r)
	target := entryTarget(qname, id)
	audited := "queue " + id
	if qname != "" {
		audited = qname + " " + id
	}
	do := func() (outcome, *view) {
		q, err := c.queueNamed(qname)
		if err != nil {
			return outcome{err: err, code: http.StatusNotFound}, nil
		}
		if !store.ValidQueueID(id) {
			return outcome{err: fmt.Errorf("%w: %q", store.ErrQueueBadID, id), code: http.StatusNotFound}, nil
		}
		switch action {
		case "delete":
			if !c.confirmed(target, r.PostForm.Get("confirm"), time.Now()) {
				v, err := c.entryView(qname, id)
				if err != nil {
					return outcome{err: err, code: queueStatus(err)}, nil
				}
				m := v.Message
				facts := []string{fmt.Sprintf("From <%s>, %d recipient(s), %s.", m.Env.From, len(m.Env.Rcpts), sizeText(m.Size))}
				for _, rc := range m.Rcpts {
					if rc.State == "waiting" {
						facts = append(facts, rc.Addr+" will not get this message.")
					}
				}
				page := "/console/queue/" + id + suffix
				return outcome{}, c.confirmPage("Delete "+target+"?", facts, page, page, target, nil)
			}
			e, err := q.Lock(id)
			if err != nil {
				return outcome{err: err, code: queueStatus(err)}, nil
			}
			defer e.Close()
			if err := e.Remove(); err != nil {
				return outcome{err: err}, nil
			}
			c.audit(r, "delete", audited, "queued", "")
			return outcome{flash: "Deleted " + target + "."}, nil
		case "retry":
			e, err := q.Lock(id)
			if err != nil {
				return outcome{err: err, code: queueStatus(err)}, nil
			}
			defer e.Close()
			s, ok := e.(store.QueueSchedule)
			if !ok {
				return outcome{err: errors.New("this queue keeps no schedule: the message is tried at every queue scan"), code: http.StatusConflict}, nil
			}
			_, attempts := s.NextAttempt()
			if err := s.Postpone(time.Now(), attempts); err != nil {
				return outcome{err: err}, nil
			}
			c.audit(r, "retry", audited, "waiting", "due now")
			return outcome{flash: strings.ToUpper(target[:1]) + target[1:] + " is due now; the delivery service takes it at its next queue scan."}, nil
		}
		return outcome{err: fmt.Errorf("unknown action %q", action), code: http.StatusBadRequest}, nil
	}
	o, cv := do()
	if cv != nil {
		return "confirm", o, cv
	}
	return "queue", o, c.queueView(1, 1)
}

// badmailAction retries or deletes a Badmail message.
func (c *Console) badmailAction(r *http.Request) (string, outcome, *view) {
	id := r.PathValue("id")
	action := r.PostForm.Get("action")
	target := "Badmail message " + id
	do := func() (outcome, *view) {
		admin, ok := c.opts.Queue.(store.BadmailAdmin)
		if !ok {
			return outcome{err: errors.New("this queue cannot retry or delete Badmail messages"), code: http.StatusConflict}, nil
		}
		switch action {
		case "delete":
			if !c.confirmed(target, r.PostForm.Get("confirm"), time.Now()) {
				v, err := c.badmailView(id)
				if err != nil {
					return outcome{err: err, code: queueStatus(err)}, nil
				}
				first, _, _ := strings.Cut(v.Message.Reason, "\n")
				return outcome{}, c.confirmPage("Delete "+target+"?", []string{first, "The message will be gone for good."},
					"/console/badmail/"+id, "/console/badmail/"+id, target, nil)
			}
			if err := admin.DeleteBadmail(id); err != nil {
				return outcome{err: err, code: queueStatus(err)}, nil
			}
			c.audit(r, "delete", "Badmail "+id, "Badmail", "")
			return outcome{flash: "Deleted Badmail message " + id + "."}, nil
		case "retry":
			nid, err := admin.RetryBadmail(id)
			if err != nil {
				code := queueStatus(err)
				if code == http.StatusInternalServerError {
					code = http.StatusUnprocessableEntity
				}
				return outcome{err: err, code: code}, nil
			}
			c.audit(r, "retry", "Badmail "+id, "Badmail", "queue "+nid)
			return outcome{flash: "Badmail message " + id + " is queued again as " + nid + "."}, nil
		}
		return outcome{err: fmt.Errorf("unknown action %q", action), code: http.StatusBadRequest}, nil
	}
	o, cv := do()
	if cv != nil {
		return "confirm", o, cv
	}
	return "queue", o, c.queueView(1, 1)
}

// confirmPage is the first step of a deletion: what will be lost, and a
// form with the token that the second step needs.
func (c *Console) confirmPage(question string, facts []string, action, cancel, target string, fields []field) *view {
	v := c.base("Confirm", "")
	v.Confirm = &confirmView{Action: action, Question: question, Facts: facts, Fields: fields,
		Token: c.confirmToken(target, time.Now().Add(ConfirmTTL)), Cancel: cancel}
	return v
}
