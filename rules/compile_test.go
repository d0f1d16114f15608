package rules

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/recsys-dev/recsys/catalog"
)

func TestCompilePred_Shapes(t *testing.T) {
	for _, tt := range []struct {
		expr     string
		compiled bool
	}{
		{"item.available", true},
		{"user.age == 0 || item.age_rating <= user.age", true},
		{childRule, true},
		{`item.age_days < 30 && item.price >= 9.5`, true},
		{`"explicit" in item.tags`, true},
		{`not (query == "kids") and item.brand != "b"`, true},
		{"item.popularity > -1.5", true},
		{"true", true},
		{`item.tags[0] == "x"`, false},
		{`lower(item.title) == "x"`, false},
		{`item.category in ["a", "b"]`, false},
		{`item.title contains "x"`, false},
		{`item.price * 2 > 10`, false},
		{`item.available && len(item.tags) > 1`, false},
	} {
		p, err := compile(tt.expr)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		if got := compilePred(p.Node()) != nil; got != tt.compiled {
			t.Errorf("%s: compiled %v, want %v", tt.expr, got, tt.compiled)
		}
	}
}

// TestCompilePred_MatchesVM: for random expressions of the compiled
// shapes (and some that are not, which must fall back), the compiled form
// agrees with the expr VM on random items, users and queries.
func TestCompilePred_MatchesVM(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nums := []string{"item.price", "item.age_rating", "item.age_days", "item.popularity", "user.age", "0", "7", "18", "2.5", "-1", "49.99"}
	strs := []string{"item.id", "item.title", "item.brand", "item.category", "user.id", "query", `"jazz"`, `"b1"`, `""`, `"kids"`}
	ops := []string{"<", "<=", ">", ">=", "==", "!="}
	var gen func(depth int) string
	gen = func(depth int) string {
		switch r := rng.IntN(9); {
		case depth > 2 || r == 0:
			return []string{"item.available", "true", "false"}[rng.IntN(3)]
		case r < 3:
			return nums[rng.IntN(len(nums))] + " " + ops[rng.IntN(len(ops))] + " " + nums[rng.IntN(len(nums))]
		case r < 5:
			return strs[rng.IntN(len(strs))] + []string{" == ", " != "}[rng.IntN(2)] + strs[rng.IntN(len(strs))]
		case r == 5:
			return strs[rng.IntN(len(strs))] + " in item.tags"
		case r == 6:
			return "!(" + gen(depth+1) + ")"
		default:
			return "(" + gen(depth+1) + []string{" && ", " || ", " and ", " or "}[rng.IntN(4)] + gen(depth+1) + ")"
		}
	}
	items := testCatalog(300)
	for i := range items {
		items[i].Brand = []string{"b1", "b2", ""}[i%3]
		items[i].Title = []string{"jazz", "kids", "x"}[i%3]
		items[i].Tags = [][]string{nil, {"jazz"}, {"kids", "explicit"}}[i%3]
	}
	m := &vm.VM{}
	compiled := 0
	for range 400 {
		src := gen(0)
		p, err := compile(src)
		if err != nil {
			if strings.Contains(err.Error(), "mismatched types") || strings.Contains(err.Error(), "invalid operation") {
				continue
			}
			t.Fatalf("%s: %v", src, err)
		}
		fn := compilePred(p.Node())
		if fn == nil {
			continue
		}
		compiled++
		for j := range 30 {
			env := NewEnv([]string{"", "u1", "b1"}[j%3], []int{0, 5, 12, 18}[j%4], []string{"", "kids", "jazz"}[j%3], now.Add(time.Duration(j)*24*time.Hour))
			it := items[rng.IntN(len(items))]
			env.SetItem(&it)
			out, err := m.Run(p, env)
			if err != nil {
				t.Fatalf("%s: VM: %v", src, err)
			}
			if got := fn(env); got != out.(bool) {
				t.Fatalf("%s on %+v (user %+v, query %q): compiled %v, VM %v", src, env.Item, env.User, env.Query, got, out)
			}
		}
	}
	if compiled < 200 {
		t.Fatalf("only %d of 400 random expressions compiled", compiled)
	}
	t.Logf("%d expressions compiled, each matching the VM on 30 environments", compiled)
}

func BenchmarkEval(b *testing.B) {
	for _, src := range []string{"item.age_days < 30", childRule} {
		p, err := compile(src)
		if err != nil {
			b.Fatal(err)
		}
		prog := newProgram("r", p)
		env := NewEnv("u", 5, "", now)
		it := catalog.Item{Category: "heavy-metal", CreatedAt: now.Add(-48 * time.Hour)}
		env.SetItem(&it)
		s := &Set{}
		for _, mode := range []string{"vm", "compiled"} {
			b.Run(fmt.Sprintf("%s/%s", mode, src), func(b *testing.B) {
				q := prog
				if mode == "vm" {
					q.fn = nil
				}
				m := &vm.VM{}
				b.ReportAllocs()
				for b.Loop() {
					s.eval(m, &q, env)
				}
			})
		}
	}
}
