package redisd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// scriptedConn is a connection whose client side is a fixed input; it
// counts the server's writes.
type scriptedConn struct {
	net.Conn // nil: only Read, Write and Close are used
	in       io.Reader
	out      bytes.Buffer
	writes   int
}

func (c *scriptedConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *scriptedConn) Write(p []byte) (int, error) { c.writes++; return c.out.Write(p) }
func (c *scriptedConn) Close() error                { return nil }

// startTest starts a server on any loopback port, closed with the test.
func startTest(t *testing.T) *Server {
	t.Helper()
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// TestServeConn_PipelineOneWrite checks that a pipeline read in one piece
// is answered in order with one write, not one per command.
func TestServeConn_PipelineOneWrite(t *testing.T) {
	s := startTest(t)
	var in, want strings.Builder
	for i := range 100 {
		in.WriteString(resp("SET", fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)))
		want.WriteString("+OK\r\n")
	}
	for i := range 100 {
		in.WriteString(resp("GET", fmt.Sprintf("k%d", i)))
		v := fmt.Sprintf("v%d", i)
		fmt.Fprintf(&want, "$%d\r\n%s\r\n", len(v), v)
	}
	c := &scriptedConn{in: strings.NewReader(in.String())}
	s.serveConn(c) // returns at the input's end
	if got := c.out.String(); got != want.String() {
		t.Fatalf("replies differ:\n got %q\nwant %q", got, want.String())
	}
	if c.writes != 1 {
		t.Errorf("200 pipelined commands answered with %d writes, want 1", c.writes)
	}
}

// TestServeConn_BadInput checks that what is not a RESP array of bulk
// strings gets an error reply and the connection ends.
func TestServeConn_BadInput(t *testing.T) {
	s := startTest(t)
	for _, in := range []string{
		"PING\r\n",                   // inline command
		"*1\r\n:5\r\n",               // an integer, not a bulk string
		"*1\r\n$-1\r\n",              // a negative length
		"*1\r\n$4\r\nPINGxx",         // the bulk's end is not CRLF
		"*x\r\n",                     // not a number
		"*2\r\n$4\r\nPING\r\n$99999", // cut short: no reply, no panic
	} {
		c := &scriptedConn{in: strings.NewReader(in)}
		s.serveConn(c)
		if got := c.out.String(); !strings.HasPrefix(got, "-ERR Protocol error") && got != "" {
			t.Errorf("%q: reply %q, want a protocol error or nothing", in, got)
		}
		if strings.HasPrefix(in, "PING") && c.out.Len() == 0 {
			t.Errorf("%q: no reply", in)
		}
	}
}

// TestServer_RefusesPubSub checks that commands whose state the embedded
// server cannot end with the connection are refused with an error.
func TestServer_RefusesPubSub(t *testing.T) {
	s := startTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true})
	defer c.Close()
	err := c.Do(ctx, "SUBSCRIBE", "ch").Err()
	if err == nil || !strings.Contains(err.Error(), "not served by the embedded server") {
		t.Fatalf("SUBSCRIBE: %v, want a refusal", err)
	}
	// The connection still serves.
	roundTrip(t, s.Addr())
}

// TestServer_CloseEndsConnections checks that Close ends the connections
// it serves, not only the listener.
func TestServer_CloseEndsConnections(t *testing.T) {
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(resp("PING"))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("PING: %q, %v", buf[:n], err)
	}
	s.Close()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("read %q after Close, want the connection ended", buf[:n])
	}
}
