package server

import (
	"net"
	"net/http"
	"strings"
)

// HostRouter sends a request to the handler registered for its Host's
// suffix (e.g. ".blob.outpost.localhost"), or to Default. Longest suffix
// wins, so {account}.blob.{suffix} is not mistaken for a hub {name}.{suffix}.
type HostRouter struct {
	Default  http.Handler
	suffixes []hostRoute
}

type hostRoute struct {
	suffix  string
	handler http.Handler
}

// Handle routes hosts ending in suffix (compared case-insensitively) to h.
func (hr *HostRouter) Handle(suffix string, h http.Handler) {
	suffix = strings.ToLower(suffix)
	i := 0
	for i < len(hr.suffixes) && len(hr.suffixes[i].suffix) >= len(suffix) {
		i++
	}
	hr.suffixes = append(hr.suffixes, hostRoute{})
	copy(hr.suffixes[i+1:], hr.suffixes[i:])
	hr.suffixes[i] = hostRoute{suffix: suffix, handler: h}
}

func (hr *HostRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, route := range hr.suffixes {
		if strings.HasSuffix(host, route.suffix) {
			route.handler.ServeHTTP(w, r)
			return
		}
	}
	hr.Default.ServeHTTP(w, r)
}

// PathRouter dispatches on the first path segment, case-insensitively and
// without cleaning the path (see Server): "subscriptions" → the resource
// manager, and so on. Unmatched requests go to NotFound.
type PathRouter struct {
	routes   map[string]http.Handler
	NotFound http.Handler
}

// Handle routes requests whose first segment equals segment to h.
func (pr *PathRouter) Handle(segment string, h http.Handler) {
	if pr.routes == nil {
		pr.routes = map[string]http.Handler{}
	}
	pr.routes[strings.ToLower(segment)] = h
}

func (pr *PathRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimLeft(r.URL.Path, "/")
	first, _, _ := strings.Cut(p, "/")
	if h, ok := pr.routes[strings.ToLower(first)]; ok {
		h.ServeHTTP(w, r)
		return
	}
	if pr.NotFound != nil {
		pr.NotFound.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}
