package embed

import (
	"container/list"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// CacheConfig sizes a Cache.
type CacheConfig struct {
	// Size is the most embeddings kept. At 128 float32 dimensions an entry
	// costs about 600 bytes with its key and bookkeeping.
	Size int `yaml:"size"`
}

// Validate reports an invalid size.
func (c CacheConfig) Validate() error {
	if c.Size <= 0 {
		return errors.New("size: must be > 0")
	}
	return nil
}

// Cache is a size-bounded LRU cache of query embeddings, safe for
// concurrent use. Keys should be Normalize(query): texts with the same
// normal form have the same embedding, so they share an entry.
//
// One Cache belongs to one embedding model; a new model (a new bundle)
// needs a new Cache, or it would serve vectors from the old model.
type Cache struct {
	size   int
	mu     sync.Mutex
	ll     *list.List // front is most recently used
	items  map[string]*list.Element
	hits   prometheus.Counter
	misses prometheus.Counter
}

type cacheEntry struct {
	key string
	vec []float32
}

// NewCache returns an empty cache. When reg is not nil the cache counts
// lookups in recsys_embed_cache_requests_total{result="hit"|"miss"}. A
// cache created for a new bundle shares the counter registered by the
// previous one, so the series continue across reloads.
func NewCache(cfg CacheConfig, reg prometheus.Registerer) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cache config: %w", err)
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recsys_embed_cache_requests_total",
		Help: "Query embedding cache lookups by result (hit or miss).",
	}, []string{"result"})
	if reg != nil {
		if err := reg.Register(requests); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register cache metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("register cache metrics: %w", err)
			}
			requests = existing
		}
	}
	return &Cache{
		size:   cfg.Size,
		ll:     list.New(),
		items:  make(map[string]*list.Element, cfg.Size),
		hits:   requests.WithLabelValues("hit"),
		misses: requests.WithLabelValues("miss"),
	}, nil
}

// Get returns the cached vector for key. The vector is shared: callers
// must not modify it.
func (c *Cache) Get(key string) ([]float32, bool) {
	var vec []float32
	c.mu.Lock()
	el, ok := c.items[key]
	if ok {
		c.ll.MoveToFront(el)
		vec = el.Value.(*cacheEntry).vec
	}
	c.mu.Unlock()
	// Counters are updated outside the lock; they are atomic themselves.
	if !ok {
		c.misses.Inc()
		return nil, false
	}
	c.hits.Inc()
	return vec, true
}

// Put stores vec under key, evicting the least recently used entry when
// the cache is full. The cache keeps vec; callers must not modify it after.
func (c *Cache) Put(key string, vec []float32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*cacheEntry).vec = vec
		c.ll.MoveToFront(el)
		return
	}
	if c.ll.Len() >= c.size {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, vec: vec})
}

// Len returns the number of cached entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
