package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topic settings this service asks for when it creates a topic, and checks
// on an existing one: with acks=all an acknowledged record survives the
// loss of a broker only if it is on several replicas (replication factor),
// the leader waits for at least two of them (min.insync.replicas), and an
// out-of-sync replica is never elected leader (unclean leader election
// off).
const (
	durableReplication = 3
	durableMinISR      = 2
)

// ErrNotDurable is returned by EnsureTopics, with kafka.require_durable_topic,
// when a topic's settings let an acknowledged event be lost with one broker.
var ErrNotDurable = errors.New("topic is not durable")

// Durability is what a topic's settings mean for an acknowledged record.
type Durability struct {
	Topic       string
	Brokers     int
	Replication int
	MinISR      int
	Unclean     bool
}

// Durable reports whether acks=all means what it says: at least two
// replicas must have a record before it is acknowledged, and only those
// can lead.
func (d Durability) Durable() bool {
	return d.Replication >= 2 && d.MinISR >= 2 && d.MinISR <= d.Replication && !d.Unclean
}

func (d Durability) String() string {
	return fmt.Sprintf("%s: replication factor %d, min.insync.replicas %d, unclean leader election %v, on %d brokers",
		d.Topic, d.Replication, d.MinISR, d.Unclean, d.Brokers)
}

// plan is the replication factor and min.insync.replicas a new topic gets
// on a cluster of brokers: the configured values, or 3 and 2 where the
// cluster is that large, less on a smaller one.
func (c Config) plan(brokers int) (replication, minISR int) {
	replication = c.ReplicationFactor
	if replication == 0 {
		replication = min(durableReplication, max(brokers, 1))
	}
	minISR = c.MinInsyncReplicas
	if minISR == 0 {
		minISR = 1
		if replication >= durableReplication {
			minISR = durableMinISR
		}
	}
	return replication, minISR
}

// ensureTopic creates topic when missing, with the planned durability
// settings and the configured retention and partitions.
func ensureTopic(ctx context.Context, cl *kgo.Client, cfg Config, topic string) error {
	var extra map[string]string
	if cfg.Retention > 0 {
		extra = map[string]string{"retention.ms": strconv.FormatInt(cfg.Retention.Milliseconds(), 10)}
	}
	return CreateTopic(ctx, cl, cfg, topic, cfg.Partitions, extra)
}

// CreateTopic creates topic when missing with the durability cfg plans
// (replication, min.insync.replicas, no unclean leader election), the
// given partition count (0: the broker's default) and further topic
// configs (e.g. cleanup.policy). An existing topic is left as it is.
func CreateTopic(ctx context.Context, cl *kgo.Client, cfg Config, topic string, partitions int, extra map[string]string) error {
	adm := kadm.NewClient(cl)
	if dl, ok := ctx.Deadline(); ok {
		adm.SetTimeoutMillis(int32(max(time.Until(dl).Milliseconds(), 1)))
	}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return fmt.Errorf("create topic %s: list brokers: %w", topic, err)
	}
	replication, minISR := cfg.plan(len(brokers))
	configs := map[string]*string{
		"min.insync.replicas":            kadm.StringPtr(strconv.Itoa(minISR)),
		"unclean.leader.election.enable": kadm.StringPtr("false"),
	}
	for k, v := range extra {
		configs[k] = kadm.StringPtr(v)
	}
	parts := int32(-1)
	if partitions > 0 {
		parts = int32(partitions)
	}
	resp, err := adm.CreateTopics(ctx, parts, int16(replication), configs, topic)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			if r.ErrMessage != "" {
				return fmt.Errorf("create topic %s: %w (%s)", topic, r.Err, r.ErrMessage)
			}
			return fmt.Errorf("create topic %s: %w", topic, r.Err)
		}
	}
	return nil
}

// TopicDurability reads the replication factor, min.insync.replicas and
// unclean leader election of topic, and the cluster's broker count.
func TopicDurability(ctx context.Context, cl *kgo.Client, topic string) (Durability, error) {
	adm := kadm.NewClient(cl)
	d := Durability{Topic: topic}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return d, fmt.Errorf("check topic %s: list brokers: %w", topic, err)
	}
	d.Brokers = len(brokers)
	topics, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return d, fmt.Errorf("check topic %s: %w", topic, err)
	}
	td, ok := topics[topic]
	if !ok || td.Err != nil {
		return d, fmt.Errorf("check topic %s: %w", topic, errors.Join(td.Err, ErrUnknownTopic))
	}
	for _, p := range td.Partitions {
		if d.Replication == 0 || len(p.Replicas) < d.Replication {
			d.Replication = len(p.Replicas)
		}
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return d, fmt.Errorf("check topic %s: describe configs: %w", topic, err)
	}
	rc, err := cfgs.On(topic, nil)
	if err != nil {
		return d, fmt.Errorf("check topic %s: describe configs: %w", topic, err)
	}
	d.MinISR = 1 // Kafka's default
	for _, c := range rc.Configs {
		if c.Value == nil {
			continue
		}
		switch c.Key {
		case "min.insync.replicas":
			if n, err := strconv.Atoi(*c.Value); err == nil {
				d.MinISR = n
			}
		case "unclean.leader.election.enable":
			d.Unclean = *c.Value == "true"
		}
	}
	return d, nil
}

// checkDurability reads both topics' settings and, when one is not
// durable, logs a warning or, with RequireDurableTopic, fails.
func (s *Sink) checkDurability(ctx context.Context) error {
	for _, topic := range []string{s.p.cfg.Topic, s.dlqTopic} {
		d, err := TopicDurability(ctx, s.p.cl, topic)
		if err != nil {
			return err
		}
		s.durMu.Lock()
		s.durability = append(slices.DeleteFunc(s.durability, func(x Durability) bool { return x.Topic == topic }), d)
		s.durMu.Unlock()
		if d.Durable() {
			continue
		}
		if s.p.cfg.RequireDurableTopic {
			return fmt.Errorf("%w: %s; kafka.require_durable_topic wants replication >= 2, min.insync.replicas >= 2 "+
				"and no unclean leader election", ErrNotDurable, d)
		}
		s.logger.Warn("kafka topic is not durable: an acknowledged event can be lost with one broker "+
			"(set kafka.require_durable_topic to refuse to start)", "topic", d.String())
	}
	return nil
}

// Durability is what the last check found of the events and dead-letter
// topics.
func (s *Sink) Durability() []Durability {
	s.durMu.Lock()
	defer s.durMu.Unlock()
	return slices.Clone(s.durability)
}
