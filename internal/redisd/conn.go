package redisd

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"unsafe"

	"github.com/alicebob/miniredis/v2/server"
)

// The embedded server reads its own connections and hands each command to
// miniredis's dispatcher. miniredis's own loop parses on one goroutine,
// passes every command to another over a channel and flushes after each
// reply, so a pipeline of n commands cost n goroutine hand-offs and n
// write calls (its write calls alone were 4% of the process's CPU at 300
// searches/s, each search and each counters batch a pipeline). Here one
// goroutine per connection parses, dispatches and flushes once the
// commands it has read are answered: a pipeline gets one write.

// conns tracks the open connections, closed with the server.
type conns struct {
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

func (cs *conns) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	if cs.open == nil {
		cs.open = map[net.Conn]struct{}{}
	}
	cs.open[c] = struct{}{}
	return true
}

func (cs *conns) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.open, c)
	cs.mu.Unlock()
}

func (cs *conns) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for c := range cs.open {
		c.Close()
	}
	cs.open = nil
}

// accept serves l's connections until it is closed.
func (s *Server) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if !s.conns.add(c) {
			c.Close()
			return
		}
		go s.serveConn(c)
	}
}

// serveConn answers one connection's commands in order.
func (s *Server) serveConn(c net.Conn) {
	defer s.conns.remove(c)
	defer c.Close()
	r := bufio.NewReaderSize(c, 16<<10)
	w := bufio.NewWriterSize(c, 16<<10)
	peer := server.NewPeer(w)
	s.writers.Store(peer, w)
	defer s.writers.Delete(peer)
	srv := s.mr.Server()
	for {
		args, err := readCommand(r)
		if err != nil {
			if errors.Is(err, errProtocol) {
				peer.WriteError("ERR Protocol error: " + err.Error())
				peer.Flush()
			}
			return
		}
		if len(args) == 0 {
			continue // "*0": nothing to do, as in Redis
		}
		srv.Dispatch(peer, args)
		if peer.Closed() { // QUIT
			peer.Flush()
			return
		}
		// More commands already read: answer them before writing.
		if r.Buffered() == 0 {
			peer.Flush()
		}
	}
}

var errProtocol = errors.New("protocol error")

// maxBulk bounds one argument, as Redis's proto-max-bulk-len does.
const maxBulk = 512 << 20

// readCommand reads one command: a RESP array of bulk strings, as clients
// send them (inline commands are not served).
func readCommand(r *bufio.Reader) ([]string, error) {
	n, err := readHeader(r, '*')
	if err != nil {
		return nil, err
	}
	if n > 1<<20 {
		return nil, errProtocol
	}
	args := make([]string, 0, n)
	// The arguments share one buffer (a new one when it is full: the
	// strings already made keep the old one), not one allocation each.
	var arena []byte
	for range n {
		size, err := readHeader(r, '$')
		if err != nil {
			return nil, err
		}
		if size > maxBulk {
			return nil, errProtocol
		}
		if cap(arena)-len(arena) < size+2 {
			arena = make([]byte, 0, max(size+2, 256, 2*cap(arena)))
		}
		at := len(arena)
		arena = arena[:at+size+2]
		buf := arena[at:]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[size] != '\r' || buf[size+1] != '\n' {
			return nil, errProtocol
		}
		// Those bytes are not written again: the argument shares them.
		args = append(args, unsafe.String(unsafe.SliceData(buf), size))
	}
	return args, nil
}

// readHeader reads a "<kind><non-negative int>\r\n" line.
func readHeader(r *bufio.Reader, kind byte) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, errProtocol
		}
		return 0, err
	}
	if len(line) < 4 || line[0] != kind || line[len(line)-2] != '\r' {
		return 0, errProtocol
	}
	n, err := strconv.Atoi(string(line[1 : len(line)-2]))
	if err != nil || n < 0 {
		return 0, errProtocol
	}
	return n, nil
}
