package rank

import (
	"encoding/json"
	"github.com/redis/go-redis/v9"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recsys-dev/recsys/catalog"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr []string // substrings, all must appear; none means valid
	}{
		{name: "default is valid", mutate: func(*Config) {}},
		{
			name:    "bad source names its index",
			mutate:  func(c *Config) { c.Features[2].Source = "session" },
			wantErr: []string{`features[2].source: must be item, request, counter or user, got "session"`},
		},
		{
			name:    "unknown type",
			mutate:  func(c *Config) { c.Features[0].Type = "float" },
			wantErr: []string{`features[0].type: must be numeric, categorical or binary, got "float"`},
		},
		{
			name:    "type contradicts the feature",
			mutate:  func(c *Config) { c.Features[22].Type = TypeNumeric },
			wantErr: []string{`features[22].type: category_id is categorical, not numeric`},
		},
		{
			name:    "linear weight on an id",
			mutate:  func(c *Config) { c.Weights[FeatBrandID] = 0.5 },
			wantErr: []string{`weights.brand_id: a categorical feature (an id) cannot have a linear weight`},
		},
		{
			name:    "feature under the wrong source",
			mutate:  func(c *Config) { c.Features[17].Source = SourceUser },
			wantErr: []string{`features[17].name: unknown user feature "log_popularity" (known: user_category_affinity, user_brand_affinity, user_history, user_tag_affinity)`},
		},
		{
			name:    "duplicate name",
			mutate:  func(c *Config) { c.Features[3].Name = c.Features[1].Name; c.Features[3].Source = SourceRequest },
			wantErr: []string{`features[3].name: duplicate "retrieval_rank" (also features[1])`},
		},
		{
			name:    "unknown built-in item feature",
			mutate:  func(c *Config) { c.Features = append(c.Features, FeatureSpec{Name: "colour", Source: SourceItem}) },
			wantErr: []string{`features[32].name: unknown item feature "colour"`},
		},
		{
			name:    "unknown request feature",
			mutate:  func(c *Config) { c.Features[0].Name = "ctr" },
			wantErr: []string{`features[0].name: unknown request feature "ctr"`},
		},
		{
			name:    "empty name",
			mutate:  func(c *Config) { c.Features[0].Name = "" },
			wantErr: []string{"features[0].name: must not be empty"},
		},
		{
			name:    "weight for undeclared feature",
			mutate:  func(c *Config) { c.Weights["ctr"] = 1 },
			wantErr: []string{"weights.ctr: not a declared feature"},
		},
		{
			name: "non-finite weight and default",
			mutate: func(c *Config) {
				c.Weights[FeatLogPrice] = float32(math.Inf(1))
				c.Features[4].Default = float32(math.NaN())
			},
			wantErr: []string{"weights.log_price: must be finite", "features[4].default: must be finite"},
		},
		{
			name:    "no features, timeout, prefix",
			mutate:  func(c *Config) { c.Features = nil; c.Weights = nil; c.FetchTimeout = 0; c.KeyPrefix = "" },
			wantErr: []string{"features: must not be empty", "fetch_timeout: must be > 0", "key_prefix: must not be empty"},
		},
		{
			name:    "prefix with whitespace",
			mutate:  func(c *Config) { c.KeyPrefix = "a b" },
			wantErr: []string{"key_prefix: must not contain whitespace"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestConfig_Names(t *testing.T) {
	c := Config{Features: []FeatureSpec{
		{Name: FeatRetrievalScore, Source: SourceRequest, Default: -1},
		{Name: FeatLogPrice, Source: SourceItem, Default: 2},
		{Name: FeatRetrievalRank, Source: SourceRequest, Default: 99},
		{Name: FeatAvailable, Source: SourceItem, Default: 1},
	}}
	tests := []struct {
		name      string
		got, want any
	}{
		{"names", c.Names(), []string{FeatRetrievalScore, FeatLogPrice, FeatRetrievalRank, FeatAvailable}},
		{"item names", c.ItemNames(), []string{FeatLogPrice, FeatAvailable}},
		{"defaults", c.Defaults(), []float32{-1, 2, 99, 1}},
		{"item defaults", c.ItemDefaults(), []float32{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gb, _ := json.Marshal(tt.got)
			wb, _ := json.Marshal(tt.want)
			if string(gb) != string(wb) {
				t.Fatalf("got %s, want %s", gb, wb)
			}
		})
	}
}

func TestItemFeatures(t *testing.T) {
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	items := []catalog.Item{
		{ID: "a", Brand: "zeta", Category: "rock", Price: math.E - 1, Popularity: 0, AgeRating: 12, Available: true, CreatedAt: now.Add(-10 * 24 * time.Hour)},
		{ID: "b", Brand: "alpha", Category: "heavy-metal", Price: 0, Popularity: math.E*math.E - 1, Available: false},
		{ID: "c", Category: "rock", Price: -5, Popularity: -3, Available: true, CreatedAt: now.Add(48 * time.Hour)},
	}
	cfg := Config{Features: []FeatureSpec{
		{Name: FeatRetrievalScore, Source: SourceRequest}, // skipped: not an item feature
		{Name: FeatLogPopularity, Source: SourceItem},
		{Name: FeatLogPrice, Source: SourceItem},
		{Name: FeatAgeDays, Source: SourceItem, Default: 365},
		{Name: FeatAgeRating, Source: SourceItem},
		{Name: FeatAvailable, Source: SourceItem},
		{Name: FeatCategoryID, Source: SourceItem},
		{Name: FeatBrandID, Source: SourceItem},
		{Name: FeatLogInteractions, Source: SourceItem},
	}}
	// Decayed interactions from the event log for the first two items
	// only (the third has none: a short slice).
	rows, err := ItemFeatures(cfg, items, NewDict(items), now, []float32{math.E - 1, 0})
	if err != nil {
		t.Fatal(err)
	}
	// Dict: categories [heavy-metal rock], brands [alpha zeta].
	want := [][]float32{
		{0, 1, 10, 12, 1, 2, 2, 1},
		{2, 0, 365, 0, 0, 1, 1, 0}, // no created_at: the age_days default
		{0, 0, 0, 0, 1, 2, 0, 0},   // negative price/popularity clamp to 0, future date to age 0, no brand = 0
	}
	for i := range want {
		t.Run(items[i].ID, func(t *testing.T) {
			for j := range want[i] {
				if math.Abs(float64(rows[i][j]-want[i][j])) > 1e-5 {
					t.Fatalf("row = %v, want %v", rows[i], want[i])
				}
			}
		})
	}
	t.Run("rows do not overlap", func(t *testing.T) {
		rows[0] = append(rows[0], 42)
		if rows[1][0] != 2 {
			t.Fatal("appending to one row overwrote the next")
		}
	})
	t.Run("unknown item feature", func(t *testing.T) {
		bad := Config{Features: []FeatureSpec{{Name: "colour", Source: SourceItem}}}
		if _, err := ItemFeatures(bad, items, nil, now, nil); err == nil {
			t.Fatal("want error for unknown item feature")
		}
	})
}

func TestNewDict(t *testing.T) {
	items := []catalog.Item{{Category: "rock", Brand: "b2"}, {Category: "jazz", Brand: "b1"}, {Category: "rock"}, {}}
	reversed := slices.Clone(items)
	slices.Reverse(reversed)
	for _, tc := range []struct {
		name  string
		items []catalog.Item
	}{{"catalog order", items}, {"reversed order", reversed}} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDict(tc.items)
			checks := []struct {
				got, want int
				what      string
			}{
				{d.CategoryID("jazz"), 1, "jazz"},
				{d.CategoryID("rock"), 2, "rock"},
				{d.CategoryID("pop"), 0, "unknown category"},
				{d.CategoryID(""), 0, "empty category"},
				{d.BrandID("b1"), 1, "b1"},
				{d.BrandID("b2"), 2, "b2"},
				{d.BrandID(""), 0, "empty brand"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: id %d, want %d", c.what, c.got, c.want)
				}
			}
			if nc, nb := d.Len(); nc != 2 || nb != 2 {
				t.Errorf("Len() = %d, %d, want 2, 2", nc, nb)
			}
		})
	}
}

func TestDict_JSON(t *testing.T) {
	d := NewDict([]catalog.Item{{Category: "rock", Brand: "b"}, {Category: "jazz"}})
	t.Run("round trip keeps ids", func(t *testing.T) {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var got Dict
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.CategoryID("rock") != 2 || got.CategoryID("jazz") != 1 || got.BrandID("b") != 1 {
			t.Fatalf("ids changed after round trip via %s", b)
		}
	})
	for _, tc := range []struct{ name, in, want string }{
		{"unsorted", `{"categories":["rock","jazz"],"brands":[]}`, "categories[1]: values must be sorted and unique"},
		{"duplicate", `{"categories":[],"brands":["a","a"]}`, "brands[1]: values must be sorted and unique"},
		{"empty value", `{"categories":[""],"brands":[]}`, "categories: empty value"},
		{"wrong type", `{"categories":5}`, "decode dict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Dict
			err := json.Unmarshal([]byte(tc.in), &got)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Unmarshal(%s) = %v, want error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestLayout_Fill(t *testing.T) {
	cfg := Config{Features: []FeatureSpec{
		{Name: FeatLogPrice, Source: SourceItem},
		{Name: FeatRetrievalRank, Source: SourceRequest},
		{Name: FeatAvailable, Source: SourceItem},
		{Name: FeatRetrievalScore, Source: SourceRequest},
		{Name: FeatLexicalScore, Source: SourceRequest},
		{Name: FeatLexicalRank, Source: SourceRequest},
		{Name: FeatDenseScore, Source: SourceRequest},
		{Name: FeatDenseRank, Source: SourceRequest},
		{Name: FeatBothSources, Source: SourceRequest},
		{Name: FeatTitleTermShare, Source: SourceRequest},
		{Name: FeatLexicalScoreRatio, Source: SourceRequest},
		{Name: FeatDenseScoreGap, Source: SourceRequest},
		{Name: FeatQueryWords, Source: SourceRequest},
	}}
	l := NewLayout(cfg)
	if l.Len() != 13 || l.ItemLen() != 2 {
		t.Fatalf("Len, ItemLen = %d, %d, want 13, 2", l.Len(), l.ItemLen())
	}
	dst := make([]float32, 13)
	l.Fill(dst, []float32{3.5, 1}, Retrieval{Score: 0.75, Rank: 7, LexScore: 12.5, LexRank: 3, DenseScore: 0.5,
		DenseRank: 200, Both: true, TitleShare: 0.5, LexRatio: 0.25, DenseGap: 0.125, QueryWords: 4})
	if want := []float32{3.5, 7, 1, 0.75, 12.5, 3, 0.5, 200, 1, 0.5, 0.25, 0.125, 4}; !slices.Equal(dst, want) {
		t.Fatalf("Fill = %v, want %v", dst, want)
	}
	t.Run("undeclared request features keep defaults", func(t *testing.T) {
		l := NewLayout(Config{Features: []FeatureSpec{{Name: FeatAvailable, Source: SourceItem, Default: 1}}})
		dst := []float32{9}
		l.Fill(dst, []float32{0}, Retrieval{Score: 1, Rank: 1})
		if dst[0] != 0 {
			t.Fatalf("Fill = %v, want [0]", dst)
		}
	})
}

func TestRedisConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		cfg  RedisConfig
		want []string
	}{
		{name: "valid", cfg: RedisConfig{Addr: "127.0.0.1:6379"}},
		{name: "empty addr", cfg: RedisConfig{}, want: []string{"addr: must not be empty"}},
		{
			name: "negatives",
			cfg:  RedisConfig{Addr: "x:1", DB: -1, DialTimeout: -1, ReadTimeout: -1, WriteTimeout: -2, PoolSize: -1},
			want: []string{"db: must be >= 0", "dial_timeout: must be >= 0", "read_timeout: must be >= 0", "write_timeout: must be >= 0", "pool_size: must be >= 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestNewRedisClient(t *testing.T) {
	t.Setenv(EnvRedisPassword, "s3cret")
	c, _ := NewRedisClient(RedisConfig{Addr: "127.0.0.1:1", DB: 3, PoolSize: 7, ReadTimeout: time.Second, Username: "svc"})
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.Password != "s3cret" || o.DB != 3 || o.PoolSize != 7 || o.ReadTimeout != time.Second || o.Addr != "127.0.0.1:1" || o.Username != "svc" {
		t.Fatalf("options not taken from config and env: %+v", o)
	}
	cc, _ := NewRedisClient(RedisConfig{Mode: RedisCluster, Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}})
	defer cc.Close()
	if co := cc.(*redis.ClusterClient).Options(); len(co.Addrs) != 2 || co.Password != "s3cret" {
		t.Fatalf("cluster options: %+v", co)
	}
	fc, _ := NewRedisClient(RedisConfig{Mode: RedisSentinel, Addrs: []string{"127.0.0.1:26379"}, MasterName: "main"})
	defer fc.Close()
	if _, ok := fc.(*redis.Client); !ok {
		t.Fatalf("sentinel mode built %T, want a failover *redis.Client", fc)
	}
}

func TestRedisConfig_ValidateModes(t *testing.T) {
	for _, tc := range []struct {
		cfg  RedisConfig
		want string
	}{
		{RedisConfig{Addr: "a:1"}, ""},
		{RedisConfig{Mode: RedisCluster, Addrs: []string{"a:1", "b:1"}}, ""},
		{RedisConfig{Mode: RedisSentinel, Addrs: []string{"s:26379"}, MasterName: "m"}, ""},
		{RedisConfig{}, "addr: must not be empty"},
		{RedisConfig{Addr: "a:1", Addrs: []string{"b:1"}}, "addrs: only for mode cluster or sentinel"},
		{RedisConfig{Mode: RedisCluster}, "addrs: a cluster needs at least one seed node"},
		{RedisConfig{Mode: RedisCluster, Addr: "a:1", DB: 2}, "db: a Redis Cluster has only database 0"},
		{RedisConfig{Mode: RedisSentinel, Addrs: []string{"s:1"}}, "master_name: sentinel mode needs"},
		{RedisConfig{Mode: "ring", Addr: "a:1"}, "mode: must be single, cluster or sentinel"},
		{RedisConfig{Addr: "a:1", MasterName: "m"}, "master_name: only for mode sentinel"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
