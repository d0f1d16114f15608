package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every override variable: RECSYS_SERVER_ADDR sets server.addr.
const EnvPrefix = "RECSYS_"

var durationType = reflect.TypeOf(time.Duration(0))

// applyEnv sets every scalar (and list-of-scalar) key that has a RECSYS_*
// variable in env. Lists of objects (features, rules) are not overridable:
// a variable would be a worse language for them than the YAML file.
// Variables with the prefix that match no key are an error, like unknown
// YAML keys, so a typo never silently does nothing.
func applyEnv(cfg any, env []string) error {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	delete(vars, EnvPrefix+"REDIS_PASSWORD") // a secret, read where it is used
	delete(vars, EnvPrefix+"ORT_LIB")        // tests' library override, not a key
	delete(vars, EnvPrefix+"CONFIG")         // the config file path itself
	var errs []string
	walk(reflect.ValueOf(cfg).Elem(), "", func(path string, v reflect.Value) {
		name := EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
		raw, ok := vars[name]
		if !ok {
			return
		}
		delete(vars, name)
		if err := setScalar(v, raw); err != nil {
			errs = append(errs, fmt.Sprintf("%s (%s): %v", name, path, err))
		}
	})
	for k := range vars {
		errs = append(errs, fmt.Sprintf("%s: matches no configuration key", k))
	}
	if len(errs) > 0 {
		return fmt.Errorf("environment overrides: %s", strings.Join(errs, "; "))
	}
	return nil
}

// walk calls fn for every settable scalar field, with its yaml key path.
func walk(v reflect.Value, prefix string, fn func(path string, v reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		parts := strings.Split(f.Tag.Get("yaml"), ",")
		tag := parts[0]
		if !f.IsExported() || tag == "-" {
			continue
		}
		if slices.Contains(parts[1:], "inline") && f.Type.Kind() == reflect.Struct {
			// An inlined struct's keys sit at its parent's level, in the
			// YAML and so in the variable names.
			walk(v.Field(i), prefix, fn)
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		path := tag
		if prefix != "" {
			path = prefix + "." + tag
		}
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Struct && fv.Type() != durationType:
			walk(fv, path, fn)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() != reflect.String:
			// lists of objects are YAML-only
		case fv.Kind() == reflect.Map:
			// maps (e.g. ranker weights) are YAML-only
		default:
			fn(path, fv)
		}
	}
}

func setScalar(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(raw, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Slice: // of strings: comma-separated, empty means empty
		var parts []string
		if raw != "" {
			for _, p := range strings.Split(raw, ",") {
				parts = append(parts, strings.TrimSpace(p))
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("cannot set a %s from the environment", v.Kind())
	}
	return nil
}
