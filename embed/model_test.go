package embed

import (
	"strings"
	"testing"
)

func TestParseModelInfo(t *testing.T) {
	good := map[string]string{
		MetaKind:       KindHashedBag,
		MetaFeaturizer: `{"buckets":1024,"min_n":3,"max_n":5,"bigrams":true,"seed":7,"max_words":10}`,
		MetaDim:        "16",
	}
	tests := []struct {
		name string
		edit func(m map[string]string)
		want string
	}{
		{"ok", func(m map[string]string) {}, ""},
		{"kind may be absent", func(m map[string]string) { delete(m, MetaKind) }, ""},
		{"invalid featurizer values", func(m map[string]string) { m[MetaFeaturizer] = `{"buckets":1}` }, "buckets: must be between"},
		{"not json", func(m map[string]string) { m[MetaFeaturizer] = `{` }, `"recsys.embed.featurizer"`},
		{"missing dim", func(m map[string]string) { delete(m, MetaDim) }, `"recsys.embed.dim"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range good {
				m[k] = v
			}
			tt.edit(m)
			info, err := parseModelInfo(m)
			if tt.want == "" {
				if err != nil || info.dim != 16 || info.featurizer.Seed != 7 {
					t.Fatalf("got %+v, %v", info, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// Model metadata comes from files the service did not necessarily write.
func FuzzParseModelInfo(f *testing.F) {
	f.Add(`{"buckets":1024,"min_n":3,"max_n":5}`, "16")
	f.Add(`{"buckets":-1}`, "x")
	f.Add(`null`, "0")
	f.Fuzz(func(t *testing.T, featurizer, dim string) {
		info, err := parseModelInfo(map[string]string{MetaFeaturizer: featurizer, MetaDim: dim})
		if err != nil {
			return
		}
		// Whatever is accepted must yield a working featurizer.
		feat, err := NewFeaturizer(info.featurizer)
		if err != nil || info.dim <= 0 {
			t.Fatalf("accepted metadata gives featurizer error %v, dim %d", err, info.dim)
		}
		ids, w := feat.Featurize("hello world")
		checkFeatures(t, info.featurizer.Buckets, ids, w)
	})
}
