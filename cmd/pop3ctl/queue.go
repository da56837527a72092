package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/queue"
)

// queueVerb is "queue list [inbound|outbound]", "queue show ID",
// "queue retry ID" and "queue delete ID": the mail queue (inbound: mail
// for local mailboxes) and the outbound queue (submitted mail for other
// domains). An ID is looked for in both.
func (c *cli) queueVerb() error {
	if len(c.args) == 0 {
		return usagef("usage: pop3ctl queue list [inbound|outbound] | show ID | retry ID | delete ID")
	}
	sub, args := strings.ToLower(c.args[0]), c.args[1:]
	st, cfg, err := c.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	in, err := queue.At(st.Root())
	if err != nil {
		return err
	}
	out, err := queue.AtOutbound(st.Root())
	if err != nil {
		return err
	}
	queues := map[string]store.Queue{store.QueueInbound: in, store.QueueOutbound: out}
	find := func() (string, store.Queue, string, error) {
		if len(args) != 1 {
			return "", nil, "", usagef("usage: pop3ctl queue %s ID", sub)
		}
		id := args[0]
		if !store.ValidQueueID(id) {
			return "", nil, "", fmt.Errorf("%q is not a queue id", id)
		}
		for _, n := range []string{store.QueueInbound, store.QueueOutbound} {
			ids, err := queues[n].List()
			if err != nil {
				return "", nil, "", err
			}
			for _, x := range ids {
				if x == id {
					return n, queues[n], id, nil
				}
			}
		}
		return "", nil, "", fmt.Errorf("no queue entry %s in the inbound or outbound queue", id)
	}
	switch sub {
	case "list":
		names := []string{store.QueueInbound, store.QueueOutbound}
		if len(args) > 1 {
			return usagef("usage: pop3ctl queue list [inbound|outbound]")
		}
		if len(args) == 1 {
			if _, ok := queues[args[0]]; !ok {
				return usagef("no queue named %q (inbound or outbound)", args[0])
			}
			names = []string{args[0]}
		}
		items := []store.QueueItem{}
		for _, n := range names {
			l, err := store.DescribeQueue(queues[n], n)
			if err != nil {
				return err
			}
			items = append(items, l...)
		}
		if c.json {
			c.emitJSON(map[string]any{"entries": items})
			return nil
		}
		var rows [][]string
		for _, it := range items {
			rows = append(rows, []string{it.Queue, it.ID, age(it), senderText(it), fmt.Sprint(len(it.Rcpts)), stateText(it)})
		}
		c.table([]string{"QUEUE", "ID", "AGE", "FROM", "RCPTS", "STATE"}, rows)
		return nil
	case "show":
		name, q, id, err := find()
		if err != nil {
			return err
		}
		it, err := store.DescribeQueueEntry(q, name, id)
		if err != nil {
			return err
		}
		if c.json {
			c.emitJSON(it)
			return nil
		}
		fmt.Fprintf(c.stdout, "queue:     %s\nid:        %s\n", it.Queue, it.ID)
		if it.Busy {
			fmt.Fprintln(c.stdout, "state:     being delivered now")
			return nil
		}
		fmt.Fprintf(c.stdout, "from:      %s\nreceived:  %s\nsize:      %d\nstate:     %s\n", senderText(it), it.Received.Format(time.RFC3339), it.Size, stateText(it))
		for _, r := range it.Rcpts {
			line := fmt.Sprintf("rcpt:      %s %s", r.Addr, r.State)
			if r.State == "failed" {
				line += " " + r.Status + " " + r.Reason
			}
			fmt.Fprintln(c.stdout, line)
		}
		return nil
	case "retry", "delete":
		name, q, id, err := find()
		if err != nil {
			return err
		}
		// The running service does it, so that it acts at once;
		// without one, the entry is changed here.
		if srv := findService(cfg.Admin.Listen); srv.answered {
			if err := queueAPI(srv.base, sub, name, id); err != nil {
				return err
			}
		} else if sub == "retry" {
			if err := store.RetryQueueEntry(q, id); err != nil {
				return err
			}
		} else if err := store.DeleteQueueEntry(q, id); err != nil {
			return err
		}
		word := map[string]string{"retry": "due now", "delete": "deleted"}[sub]
		c.say(map[string]any{"ok": true, "queue": name, "id": id}, "%s %s: %s", name, id, word)
		return nil
	}
	return usagef("usage: pop3ctl queue list [inbound|outbound] | show ID | retry ID | delete ID")
}

// queueAPI asks the service at base to retry or delete an entry.
func queueAPI(base, verb, queueName, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), ReloadTimeout)
	defer cancel()
	u := base + "/api/queue/" + verb + "?queue=" + url.QueryEscape(queueName) + "&id=" + url.QueryEscape(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no answer from the service at %s: %w", base, err)
	}
	defer resp.Body.Close()
	var ans struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ans)
	if !ans.OK {
		if ans.Error == "" {
			ans.Error = resp.Status
		}
		return fmt.Errorf("the service refused: %s", ans.Error)
	}
	return nil
}

func age(it store.QueueItem) string {
	if it.Busy || it.Received.IsZero() {
		return "-"
	}
	return time.Since(it.Received).Round(time.Second).String()
}

func senderText(it store.QueueItem) string {
	if it.Busy {
		return "-"
	}
	if it.From == "" {
		return "<>"
	}
	return it.From
}

func stateText(it store.QueueItem) string {
	switch {
	case it.Busy:
		return "delivering"
	case it.NextAttempt != nil && time.Now().Before(*it.NextAttempt):
		return fmt.Sprintf("deferred %d time(s), next in %s", it.Attempts, time.Until(*it.NextAttempt).Round(time.Second))
	}
	return "due"
}
