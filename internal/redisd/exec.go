package redisd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoRedisServer means no redis-server binary was found; tests skip on it.
var ErrNoRedisServer = errors.New("redis-server binary not found (install Debian's redis-server package)")

// Proc is a redis-server subprocess started by Exec.
type Proc struct {
	addr string
	cmd  *exec.Cmd
	dir  string
	out  *syncBuffer

	closeOnce sync.Once
	exited    chan struct{} // closed when the process has been reaped
}

// binaryPath finds redis-server on PATH, then at the Debian location, because
// test environments often run with a minimal PATH.
func binaryPath() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/redis-server"
	if st, err := os.Stat(debian); err == nil && !st.IsDir() {
		return debian, nil
	}
	return "", ErrNoRedisServer
}

// Exec starts redis-server on a free 127.0.0.1 port with persistence off and
// waits until it answers PING. ctx bounds the start-up only; the process lives
// until Close. Picking the port by listening and closing races with other
// processes, so a start that fails is retried on a new port a few times.
func Exec(ctx context.Context) (*Proc, error) {
	bin, err := binaryPath()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := execOnce(ctx, bin)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// ExecOn starts redis-server on port (a restart on the address an earlier
// one had, say), with extra arguments appended to the usual ones.
func ExecOn(ctx context.Context, port int, extra ...string) (*Proc, error) {
	bin, err := binaryPath()
	if err != nil {
		return nil, err
	}
	return execPort(ctx, bin, port, extra)
}

func execOnce(ctx context.Context, bin string) (*Proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("exec redis-server: %w", err)
	}
	return execPort(ctx, bin, port, nil)
}

func execPort(ctx context.Context, bin string, port int, extra []string) (*Proc, error) {
	dir, err := os.MkdirTemp("", "redisd-*")
	if err != nil {
		return nil, fmt.Errorf("exec redis-server: %w", err)
	}
	// --dir keeps any stray file out of the caller's working directory even
	// though --save "" and --appendonly no mean nothing should be written.
	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--protected-mode", "yes",
	}, extra...)
	cmd := exec.Command(bin, args...)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("exec redis-server: %w", err)
	}
	p := &Proc{
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		cmd:    cmd,
		dir:    dir,
		out:    out,
		exited: make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("exec redis-server on %s: %w; output: %s", p.addr, err, out.String())
	}
	return p, nil
}

func (p *Proc) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if pid, err := ping(ctx, p.addr); err == nil {
			// Another server may have taken the port first (the free port
			// is picked before ours binds it): answering is not enough, it
			// must be this process.
			if pid != p.cmd.Process.Pid {
				return fmt.Errorf("port %s is another server's (pid %d)", p.addr, pid)
			}
			return nil
		}
		select {
		case <-p.exited:
			return errors.New("process exited before answering PING")
		case <-ctx.Done():
			return fmt.Errorf("wait for PING: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// ping speaks just enough RESP to check liveness, so this package does not
// depend on a Redis client library, and returns the answering server's
// process id (from INFO server).
func ping(ctx context.Context, addr string) (pid int, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "+PONG\r\n" {
		return 0, fmt.Errorf("unexpected PING reply %q", line)
	}
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 {
		return 0, fmt.Errorf("unexpected INFO reply %q", head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server names no process_id")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is the host:port redis-server listens on.
func (p *Proc) Addr() string { return p.addr }

// Port is the port redis-server listens on.
func (p *Proc) Port() int {
	_, port, _ := net.SplitHostPort(p.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// Close kills the process, waits for it and removes its directory. It is
// safe to call more than once.
func (p *Proc) Close() {
	p.closeOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		_ = os.RemoveAll(p.dir)
	})
}

// syncBuffer collects the child's output; the exec package writes to it from
// its own goroutine while Exec may read it for an error message.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
