package filestore

import "github.com/VictoriaMetrics/metrics"

// Metrics of the file store, on the global VictoriaMetrics set:
//
//	store_lock_takeovers_total              stale session locks taken over (dead or expired holders)
//	store_lock_lost_total                   sessions that found their lock taken over
//	store_leftovers_removed_total{kind}     crash leftovers cleaned: tmp, lock, restored, trash
var (
	mLocksTakenOver   = metrics.GetOrCreateCounter(`store_lock_takeovers_total`)
	mLocksLost        = metrics.GetOrCreateCounter(`store_lock_lost_total`)
	mLeftoverTmp      = metrics.GetOrCreateCounter(`store_leftovers_removed_total{kind="tmp"}`)
	mLeftoverLock     = metrics.GetOrCreateCounter(`store_leftovers_removed_total{kind="lock"}`)
	mLeftoverRestored = metrics.GetOrCreateCounter(`store_leftovers_removed_total{kind="restored"}`)
	mLeftoverTrash    = metrics.GetOrCreateCounter(`store_leftovers_removed_total{kind="trash"}`)
)
