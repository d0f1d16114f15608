package redisd

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/alicebob/miniredis/v2"
)

// Server is an in-process Redis-protocol server listening on 127.0.0.1.
type Server struct {
	mr *miniredis.Miniredis
	// addr is kept because miniredis cannot report it after Close, and
	// callers log or compare it after shutting down.
	addr  string
	l     net.Listener
	conns conns

	nmu     sync.Mutex // guards natives and srcs
	natives map[string]NativeScript
	srcs    map[string]string // script source -> sha
	run     sync.Mutex        // one native script at a time
	exp     expiry            // the keys with a TTL, by deadline
	// writers maps each connection's peer to its buffered writer, so a
	// native script's reply is written there directly (see reply).
	writers sync.Map // *server.Peer -> *bufio.Writer
	stop    chan struct{}
	once    sync.Once
}

// Start listens on addr, which must be a 127.0.0.1 (or localhost) address;
// port 0 picks any free port. An empty addr means "127.0.0.1:0". Only the
// loopback interface is allowed because the embedded server has no
// authentication and must never be reachable from the network.
func Start(addr string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("start redis server %q: %w", addr, err)
	}
	if host != "127.0.0.1" && !strings.EqualFold(host, "localhost") {
		return nil, fmt.Errorf("start redis server %q: host must be 127.0.0.1", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start redis server %q: %w", addr, err)
	}
	// miniredis without a listener of its own (conn.go reads the
	// connections): Dial sets up its command table on a listener-less
	// server and answers one in-memory connection, closed at once.
	mr := miniredis.NewMiniRedis()
	c, err := mr.Dial()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("start redis server %q: %w", addr, err)
	}
	c.Close()
	s := &Server{mr: mr, addr: l.Addr().String(), l: l, stop: make(chan struct{})}
	// Every command passes the hook: it notes TTLs (see expiry) and runs
	// native scripts.
	mr.Server().SetPreHook(s.hook)
	go s.tick(s.stop)
	go s.accept(l)
	return s, nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.addr }

// Close stops the server and drops its data. It is safe to call twice.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.stop)
		s.l.Close()
		s.conns.closeAll()
	})
	s.mr.Close()
}
