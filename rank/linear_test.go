package rank

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestBuildLinearModel(t *testing.T) {
	tests := []struct {
		name     string
		features []string
		weights  []float32
		bias     float32
		want     string
	}{
		{"ok", []string{"a", "b"}, []float32{1, 2}, 0.5, ""},
		{"no features", nil, nil, 0, "no features"},
		{"weight count", []string{"a", "b"}, []float32{1}, 0, "1 weights for 2 features"},
		{"duplicate feature", []string{"a", "a"}, []float32{1, 2}, 0, `feature "a" listed twice`},
		{"empty name", []string{"a", ""}, []float32{1, 2}, 0, "feature 1: empty name"},
		{"nan weight", []string{"a"}, []float32{float32(math.NaN())}, 0, "weight of a is NaN"},
		{"infinite bias", []string{"a"}, []float32{1}, float32(math.Inf(1)), "bias is +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := BuildLinearModel(tt.features, tt.weights, tt.bias)
			if tt.want == "" {
				if err != nil || len(b) == 0 {
					t.Fatalf("got %d bytes, %v", len(b), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestModelMetadata(t *testing.T) {
	m, err := ModelMetadata("rank.trees.v1", []string{"ctr", "price"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := json.Unmarshal([]byte(m[MetaFeatures]), &names); err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "ctr" || names[1] != "price" || m[MetaModelKind] != "rank.trees.v1" {
		t.Fatalf("metadata = %v", m)
	}
}
