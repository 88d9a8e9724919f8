//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package relay

import (
	"errors"
	"syscall"
)

// reusePort is not available: Listen falls back to one socket.
func reusePort(network, address string, c syscall.RawConn) error {
	return errors.New("relay: SO_REUSEPORT is not available")
}
