package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"
)

// Bind listens on addr; when that fails and fallbackPort is not 0 it listens
// on the same host at fallbackPort and logs why real device SDKs will then
// fail. It returns the listener and whether it fell back.
func Bind(addr string, fallbackPort int, log *slog.Logger) (net.Listener, bool, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, false, nil
	}
	host, port, splitErr := net.SplitHostPort(addr)
	if splitErr != nil || fallbackPort == 0 || port == strconv.Itoa(fallbackPort) {
		return nil, false, fmt.Errorf("server: listen %s: %w", addr, err)
	}
	fb := net.JoinHostPort(host, strconv.Itoa(fallbackPort))
	ln, fbErr := net.Listen("tcp", fb)
	if fbErr != nil {
		return nil, false, fmt.Errorf("server: listen %s: %w; fallback %s: %w", addr, err, fb, fbErr)
	}
	reason := "it is in use"
	if errors.Is(err, syscall.EACCES) {
		reason = "this user may not bind ports below 1024"
	}
	log.Warn("could not bind the HTTPS address; serving on the fallback port instead",
		"wanted", addr, "reason", reason, "err", err, "serving", ln.Addr().String(),
		"impact", "Azure IoT device and service SDKs always connect to port "+port+" of the host in a connection string, so they will fail; az and the Azure SDKs work with the fallback endpoint",
		"fix", "run as root, or grant the binary the capability: sudo setcap cap_net_bind_service=+ep $(command -v outpost), or lower the limit: sudo sysctl net.ipv4.ip_unprivileged_port_start=443")
	return ln, true, nil
}
