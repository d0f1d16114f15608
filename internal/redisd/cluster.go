package redisd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Cluster is a Redis Cluster of redis-server processes on 127.0.0.1, one
// master per process and no replicas: the real protocol (MOVED, hash slots,
// CROSSSLOT) for the tests that need it.
type Cluster struct {
	nodes []*Proc
}

// ExecCluster starts masters cluster-enabled redis-servers, joins them
// with redis-cli --cluster create and waits until every node reports the
// cluster ok. Needs redis-server and redis-cli (Debian's redis-server and
// redis-tools packages).
func ExecCluster(ctx context.Context, masters int) (*Cluster, error) {
	if masters < 3 {
		return nil, errors.New("exec cluster: redis-cli --cluster create needs at least 3 masters")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("exec cluster: redis-cli not found: %w", err)
	}
	bin, err := binaryPath()
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for range masters {
		port, err := freePort()
		if err != nil {
			c.Close()
			return nil, err
		}
		p, err := execPort(ctx, bin, port, []string{"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes-" + strconv.Itoa(port) + ".conf", "--cluster-node-timeout", "5000"})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("exec cluster node: %w", err)
		}
		c.nodes = append(c.nodes, p)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.waitOK(ctx, cli); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) waitOK(ctx context.Context, cli string) error {
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.nodes {
		host, port, _ := net.SplitHostPort(n.Addr())
		for {
			out, err := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("cluster node %s not ok after 20s: %s", n.Addr(), out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Addrs are the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, n := range c.nodes {
		n.Close()
	}
}
