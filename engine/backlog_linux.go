package engine

import (
	"fmt"
	"net"
	"syscall"
)

// setListenBacklog applies pop3.listen_backlog. gnet listens with the
// system's somaxconn; calling listen(2) again on a listening socket (here
// a dup of gnet's, sharing the same open socket) updates its accept queue
// length on Linux (inet_listen only changes sk_max_ack_backlog when the
// socket already listens). The kernel still caps it at somaxconn.
func setListenBacklog(fd, n int) error {
	return syscall.Listen(fd, n)
}

func closeFD(fd int) { _ = syscall.Close(fd) }

// boundAddr reads a listener's local address (the port chosen for ":0").
func boundAddr(fd int) (net.Addr, error) {
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}, nil
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	}
	return nil, fmt.Errorf("unexpected socket address %T", sa)
}
