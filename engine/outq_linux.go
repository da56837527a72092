package engine

import "golang.org/x/sys/unix"

// kernelUnsent is the number of octets in fd's send queue the kernel has
// not sent yet (SIOCOUTQNSD, tcp(7)): they wait for the client's receive
// window to open, that is for the client to read. Octets sent and not yet
// acknowledged are not counted, so a delayed ACK is no pending output.
// 0 when it cannot be read.
func kernelUnsent(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQNSD)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
