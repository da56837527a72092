package auth

import "golang.org/x/sys/unix"

// setThreadNice sets the nice value of the calling thread (Linux keeps one
// per thread). A failure leaves the thread as it was.
func setThreadNice(n int) {
	unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), n)
}
