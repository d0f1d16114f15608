package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// unknownKeys walks the YAML document against the configuration's types
// and reports every key no field has, by its key path and line, with the
// nearest known key when one is close: yaml.v3 stops at the first and
// names a Go type ("field candidtes not found in type engine.Config").
func unknownKeys(b []byte, t reflect.Type) []error {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil || len(doc.Content) == 0 {
		return nil // empty, or a syntax error the decoder reports itself
	}
	var errs []error
	walkKeys(doc.Content[0], t, "", &errs)
	return errs
}

// yamlFields maps a struct's YAML keys to their field types, inline
// fields included.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func walkKeys(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t.PkgPath() == "time" {
			return
		}
		if _, custom := reflect.New(t).Interface().(yaml.Unmarshaler); custom {
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := path + k.Value
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("line %d: %s: unknown key", k.Line, key)
				if s := nearest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %s%s?)", path, s)
				}
				*errs = append(*errs, errors.New(msg))
				continue
			}
			walkKeys(v, ft, key+".", errs)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			walkKeys(item, t.Elem(), fmt.Sprintf("%s[%d].", strings.TrimSuffix(path, "."), i), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkKeys(n.Content[i+1], t.Elem(), path+n.Content[i].Value+".", errs)
		}
	}
}

// nearest is the known key closest to k, when within two edits (or one
// for short keys), else "".
func nearest(k string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	if len(k) <= 4 {
		bestD = 2
	}
	for name := range fields {
		if d := editDistance(k, name); d < bestD || (d == bestD && best != "" && name < best) {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
