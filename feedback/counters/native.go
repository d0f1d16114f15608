package counters

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/recsys-dev/recsys/internal/redisd"
)

// NativeScripts are the updater's Lua scripts and their Go equivalents,
// for the embedded Redis-protocol server (redisd.Server.Native), whose Lua
// interpreter is too slow for one script per impressed item. Real Redis
// runs the Lua; the contract tests run both and compare.
func NativeScripts() map[string]redisd.NativeScript {
	return map[string]redisd.NativeScript{itemLua: applyItem, userLua: applyUser}
}

var errArgs = errors.New("wrong number of arguments for the counters script")

// applyItem is itemLua: KEYS[1] the item key; ARGV half-life ms, TTL ms,
// then groups of field, event ms, partition, offset.
func applyItem(kv redisd.KV, keys, args []string) (any, error) {
	if len(keys) != 1 || len(args) < 2 || (len(args)-2)%4 != 0 {
		return nil, errArgs
	}
	h, err1 := strconv.ParseFloat(args[0], 64)
	ttl, err2 := strconv.ParseInt(args[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	imp, clk, ref, haveRef := 0.0, 0.0, 0.0, false
	type po struct {
		p string
		o float64
	}
	var offs []po
	v, ok, err := kv.Get(keys[0])
	if err != nil {
		return nil, err
	}
	if ok {
		i := -1
		for tok := range strings.FieldsSeq(v) {
			i++
			switch i {
			case 0:
				imp = luaNumber(tok, 0)
			case 1:
				clk = luaNumber(tok, 0)
			case 2:
				if r, ok := luaNumberOK(tok); ok {
					ref, haveRef = r, true
				}
			default:
				p, o, found := strings.Cut(tok, ":")
				if !found || !digits(p) || !digits(o) || slices.ContainsFunc(offs, func(x po) bool { return x.p == p }) {
					continue
				}
				n, _ := strconv.ParseFloat(o, 64)
				offs = append(offs, po{p, n})
			}
		}
	}
	applied := make([]byte, 0, (len(args)-2)/4)
	for g := 2; g < len(args); g += 4 {
		t, err1 := strconv.ParseFloat(args[g+1], 64)
		off, err2 := strconv.ParseFloat(args[g+3], 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		part := args[g+2]
		at := slices.IndexFunc(offs, func(x po) bool { return x.p == part })
		if at >= 0 && offs[at].o >= off {
			applied = append(applied, '0')
			continue
		}
		if at < 0 {
			offs = append(offs, po{part, off})
		} else {
			offs[at].o = off
		}
		if !haveRef {
			ref, haveRef = t, true
		}
		add := 1.0
		if t >= ref {
			f := math.Pow(2, -(t-ref)/h)
			imp, clk, ref = imp*f, clk*f, t
		} else {
			add = math.Pow(2, -(ref-t)/h)
		}
		if args[g] == "1" {
			imp += add
		} else {
			clk += add
		}
		applied = append(applied, '1')
	}
	if !slices.Contains(applied, '1') {
		return string(applied), nil
	}
	// One buffer sized for the value (two counts, a time and the offsets),
	// not written again once it is the stored string.
	b := make([]byte, 0, 48+24*len(offs))
	b = strconv.AppendFloat(b, imp, 'g', 9, 64)
	b = append(b, ' ')
	b = strconv.AppendFloat(b, clk, 'g', 9, 64)
	b = append(b, ' ')
	b = strconv.AppendFloat(b, ref, 'f', 0, 64)
	for _, x := range offs {
		b = append(b, ' ')
		b = append(b, x.p...)
		b = append(b, ':')
		b = strconv.AppendFloat(b, x.o, 'f', 0, 64)
	}
	return string(applied), kv.Set(keys[0], unsafe.String(unsafe.SliceData(b), len(b)), time.Duration(ttl)*time.Millisecond)
}

// applyUser is userLua: KEYS the history list and its offset key; ARGV
// item, history length, TTL ms, partition, offset.
func applyUser(kv redisd.KV, keys, args []string) (any, error) {
	if len(keys) != 2 || len(args) != 5 {
		return nil, errArgs
	}
	length, err1 := strconv.Atoi(args[1])
	ttl, err2 := strconv.ParseInt(args[2], 10, 64)
	off, err3 := strconv.ParseFloat(args[4], 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	last, ok, err := kv.Get(keys[1])
	if err != nil {
		return nil, err
	}
	if ok {
		if p, o, found := strings.Cut(last, ":"); found && digits(p) && digits(o) && p == args[3] {
			if n, _ := strconv.ParseFloat(o, 64); n >= off {
				return int64(0), nil
			}
		}
	}
	hist, err := kv.List(keys[0])
	if err != nil {
		return nil, err
	}
	hist = append([]string{args[0]}, hist...)
	// LTRIM 0 length-1, a negative end counting from the tail as Redis does.
	end := length - 1
	if end < 0 {
		end += len(hist)
	}
	hist = hist[:max(min(end+1, len(hist)), 0)]
	d := time.Duration(ttl) * time.Millisecond
	if err := kv.SetList(keys[0], hist, d); err != nil {
		return nil, err
	}
	return int64(1), kv.Set(keys[1], args[3]+":"+args[4], d)
}

// luaNumber is Lua's tonumber(tok) or def.
func luaNumber(tok string, def float64) float64 {
	if v, ok := luaNumberOK(tok); ok {
		return v
	}
	return def
}

// luaNumberOK is Lua's tonumber(tok) for the decimal numbers the scripts
// write (Go's parser would also take "inf" and "nan", Lua's not).
func luaNumberOK(tok string) (float64, bool) {
	if strings.ContainsFunc(tok, func(r rune) bool { return !strings.ContainsRune("0123456789.eE+-", r) }) {
		return 0, false
	}
	v, err := strconv.ParseFloat(tok, 64)
	return v, err == nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
