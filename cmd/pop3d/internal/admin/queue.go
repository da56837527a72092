package admin

import (
	"errors"
	"net/http"
	"slices"

	"github.com/pop3svc/pop3svc/store"
)

// queues returns the queues a request names (?queue=), all when none;
// ok is false (and the reply sent) for an unknown name.
func (a *Server) queues(w http.ResponseWriter, r *http.Request) (names []string, ok bool) {
	name := r.URL.Query().Get("queue")
	if name == "" {
		for n := range a.opts.Queues {
			names = append(names, n)
		}
		slices.Sort(names)
		return names, true
	}
	if _, found := a.opts.Queues[name]; !found {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no queue named " + name + " (inbound or outbound)"})
		return nil, false
	}
	return []string{name}, true
}

func (a *Server) queueList(w http.ResponseWriter, r *http.Request) {
	names, ok := a.queues(w, r)
	if !ok {
		return
	}
	entries := []store.QueueItem{}
	for _, n := range names {
		items, err := store.DescribeQueue(a.opts.Queues[n], n)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
			return
		}
		entries = append(entries, items...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

// entry finds the queue and id of a retry or delete request.
func (a *Server) entry(w http.ResponseWriter, r *http.Request) (store.Queue, string, string, bool) {
	name, id := r.URL.Query().Get("queue"), r.URL.Query().Get("id")
	q, found := a.opts.Queues[name]
	if !found || !store.ValidQueueID(id) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "give queue=inbound|outbound and a valid id"})
		return nil, "", "", false
	}
	return q, name, id, true
}

func queueError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrQueueNotFound):
		code = http.StatusNotFound
	case errors.Is(err, store.ErrQueueBusy):
		code = http.StatusConflict
	}
	writeJSON(w, code, map[string]any{"error": err.Error()})
}

func (a *Server) queueRetry(w http.ResponseWriter, r *http.Request) {
	q, name, id, ok := a.entry(w, r)
	if !ok {
		return
	}
	if err := store.RetryQueueEntry(q, id); err != nil {
		queueError(w, err)
		return
	}
	if a.opts.Retried != nil {
		a.opts.Retried(name, id)
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (a *Server) queueDelete(w http.ResponseWriter, r *http.Request) {
	q, _, id, ok := a.entry(w, r)
	if !ok {
		return
	}
	if err := store.DeleteQueueEntry(q, id); err != nil {
		queueError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}
