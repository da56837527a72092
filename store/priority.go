package store

import "context"

type lowPriorityKey struct{}

// WithLowPriority returns a context whose slow computations (a password
// hash) a store may run at a lower CPU priority than the service's other
// work: the auth queue marks the checks of suspect addresses so, and a
// flood of wrong passwords then takes only the CPU nothing else wants.
func WithLowPriority(ctx context.Context) context.Context {
	return context.WithValue(ctx, lowPriorityKey{}, true)
}

// LowPriority reports whether ctx was marked by WithLowPriority.
func LowPriority(ctx context.Context) bool {
	v, _ := ctx.Value(lowPriorityKey{}).(bool)
	return v
}
