package engine

import (
	"fmt"
	"net"
	"sync"
	"syscall"
)

// reservePort picks a free port for a listener configured with port 0 and
// holds it until release is called. The port is held by a socket that is
// bound with SO_REUSEADDR but never listens: Linux then lets gnet's
// listener (also SO_REUSEADDR) bind and listen on the same address, while
// every other port-0 bind in the meantime (the admin or SMTP listener,
// another process) is given a different port, since an automatic port
// choice does not share a bound port. Releasing once gnet listens closes
// the window in which the port could be taken. Calling release again
// does nothing.
func reservePort(host string) (port int, release func(), err error) {
	ip := net.IPv4zero
	if host != "" {
		a, err := net.ResolveIPAddr("ip", host)
		if err != nil {
			return 0, nil, err
		}
		ip = a.IP
	}
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if ip4 := ip.To4(); ip4 != nil {
		s := &syscall.SockaddrInet4{}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		family = syscall.AF_INET6
		s := &syscall.SockaddrInet6{}
		copy(s.Addr[:], ip.To16())
		sa = s
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("socket: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return 0, nil, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return 0, nil, fmt.Errorf("bind: %w", err)
	}
	bound, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return 0, nil, fmt.Errorf("getsockname: %w", err)
	}
	switch b := bound.(type) {
	case *syscall.SockaddrInet4:
		port = b.Port
	case *syscall.SockaddrInet6:
		port = b.Port
	}
	var once sync.Once
	return port, func() { once.Do(func() { syscall.Close(fd) }) }, nil
}
