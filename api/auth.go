package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"gopkg.in/yaml.v3"
)

// API key scopes.
const (
	ScopeQuery    = "query"    // search, recommend, rules dry runs
	ScopeFeedback = "feedback" // posting events
	ScopeAdmin    = "admin"    // the admin listener
)

var scopes = []string{ScopeQuery, ScopeFeedback, ScopeAdmin}

// Error codes of the access checks.
const (
	CodeUnauthenticated  = "unauthenticated"
	CodePermissionDenied = "permission_denied"
	CodeRateLimited      = "rate_limited"
)

// User token modes (AuthConfig.UserTokens).
const (
	UserTokensOff      = "off"
	UserTokensOptional = "optional" // checked when sent
	UserTokensRequired = "required" // every feedback post carries one
)

// AuthConfig says who may call what. With no key configured (the
// one-machine demo) the API is open; with any, every /v1 route needs a key
// holding its scope, and the admin listener one holding admin.
type AuthConfig struct {
	// KeysFile is a YAML list of keys ({name, sha256, scopes}); Keys the
	// same inline. Only SHA-256 hashes of keys are written down; a
	// plaintext key comes from the environment only (RECSYS_API_KEYS,
	// "name:scope+scope:key" separated by commas).
	KeysFile string    `yaml:"keys_file"`
	Keys     []KeySpec `yaml:"keys"`
	// UserTokens is off, optional or required: signed user tokens
	// (X-User-Token: user.expiry.signature, an HMAC-SHA256 with the
	// secret from RECSYS_USER_TOKEN_SECRET) that bind a feedback post to
	// one user, so a browser can only post for its own.
	UserTokens string `yaml:"user_tokens"`
}

// KeySpec is one API key as configuration holds it.
type KeySpec struct {
	Name   string   `yaml:"name"`
	SHA256 string   `yaml:"sha256"`
	Scopes []string `yaml:"scopes"`
}

// Environment variables that carry secrets.
const (
	EnvAPIKeys         = "RECSYS_API_KEYS"
	EnvUserTokenSecret = "RECSYS_USER_TOKEN_SECRET"
)

type apiKey struct {
	name   string
	hash   [sha256.Size]byte
	scopes []string
}

// Keys are the loaded API keys and the user-token secret.
type Keys struct {
	keys       []apiKey
	userTokens string
	secret     []byte
}

// LoadKeys reads the keys from cfg, its keys file and the environment.
// Every problem is reported, each naming its key.
func LoadKeys(cfg AuthConfig, getenv func(string) string) (*Keys, error) {
	k := &Keys{userTokens: cfg.UserTokens}
	if k.userTokens == "" {
		k.userTokens = UserTokensOff
	}
	var errs []error
	specs := slices.Clone(cfg.Keys)
	if cfg.KeysFile != "" {
		b, err := os.ReadFile(cfg.KeysFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.keys_file: %w", err))
		} else {
			var fromFile []KeySpec
			if err := yaml.Unmarshal(b, &fromFile); err != nil {
				errs = append(errs, fmt.Errorf("auth.keys_file: %w", err))
			}
			specs = append(specs, fromFile...)
		}
	}
	seen := map[string]bool{}
	add := func(key string, name string, hash [sha256.Size]byte, sc []string) {
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("%s.name: must not be empty", key))
		case seen[name]:
			errs = append(errs, fmt.Errorf("%s.name: duplicate %q", key, name))
		}
		seen[name] = true
		if len(sc) == 0 {
			errs = append(errs, fmt.Errorf("%s.scopes: must name at least one of %s", key, strings.Join(scopes, ", ")))
		}
		for _, s := range sc {
			if !slices.Contains(scopes, s) {
				errs = append(errs, fmt.Errorf("%s.scopes: unknown scope %q (want %s)", key, s, strings.Join(scopes, ", ")))
			}
		}
		k.keys = append(k.keys, apiKey{name: name, hash: hash, scopes: sc})
	}
	for i, s := range specs {
		key := fmt.Sprintf("auth.keys[%d]", i)
		raw, err := hex.DecodeString(s.SHA256)
		if err != nil || len(raw) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s.sha256: must be 64 hex digits (sha256sum of the key), never the key itself", key))
			continue
		}
		add(key, s.Name, [sha256.Size]byte(raw), s.Scopes)
	}
	if env := getenv(EnvAPIKeys); env != "" {
		for i, item := range strings.Split(env, ",") {
			parts := strings.SplitN(strings.TrimSpace(item), ":", 3)
			key := fmt.Sprintf("%s[%d]", EnvAPIKeys, i)
			if len(parts) != 3 || len(parts[2]) < 16 {
				errs = append(errs, fmt.Errorf("%s: want name:scope+scope:key with a key of at least 16 characters", key))
				continue
			}
			add(key, parts[0], sha256.Sum256([]byte(parts[2])), strings.Split(parts[1], "+"))
		}
	}
	switch k.userTokens {
	case UserTokensOff:
	case UserTokensOptional, UserTokensRequired:
		secret := getenv(EnvUserTokenSecret)
		if len(secret) < 32 {
			errs = append(errs, fmt.Errorf("auth.user_tokens: %s needs %s of at least 32 bytes", k.userTokens, EnvUserTokenSecret))
		}
		k.secret = []byte(secret)
	default:
		errs = append(errs, fmt.Errorf("auth.user_tokens: must be off, optional or required, got %q", k.userTokens))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return k, nil
}

// Enabled reports whether any key is configured (else the API is open).
func (k *Keys) Enabled() bool { return k != nil && len(k.keys) > 0 }

// HasScope reports whether some key holds scope.
func (k *Keys) HasScope(scope string) bool {
	if k == nil {
		return false
	}
	for _, key := range k.keys {
		if slices.Contains(key.scopes, scope) {
			return true
		}
	}
	return false
}

// lookup finds the key whose hash is presented's. Every stored hash is
// compared, in constant time, so the time taken says nothing about which
// one matched or how much of it.
func (k *Keys) lookup(presented string) *apiKey {
	h := sha256.Sum256([]byte(presented))
	var found *apiKey
	for i := range k.keys {
		if subtle.ConstantTimeCompare(h[:], k.keys[i].hash[:]) == 1 {
			found = &k.keys[i]
		}
	}
	return found
}

// presentedKey is the key of a request: Authorization: Bearer, or
// X-API-Key.
func presentedKey(c *fiber.Ctx) string {
	if v := c.Get(fiber.HeaderAuthorization); strings.HasPrefix(v, "Bearer ") {
		return strings.TrimSpace(v[len("Bearer "):])
	}
	return c.Get("X-API-Key")
}

// require is the middleware of a route needing scope: 401 without a valid
// key, 403 with a key lacking the scope. It records the key's name for the
// rate limiter and the access log.
func (k *Keys) require(scope string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if !k.Enabled() {
			return c.Next()
		}
		p := presentedKey(c)
		if p == "" {
			return &requestError{status: http.StatusUnauthorized, code: CodeUnauthenticated,
				msg: "an API key is required (Authorization: Bearer <key> or X-API-Key)"}
		}
		key := k.lookup(p)
		if key == nil {
			return &requestError{status: http.StatusUnauthorized, code: CodeUnauthenticated, msg: "unknown API key"}
		}
		if !slices.Contains(key.scopes, scope) {
			return &requestError{status: http.StatusForbidden, code: CodePermissionDenied,
				msg: fmt.Sprintf("API key %q lacks the %s scope", key.name, scope)}
		}
		c.Locals(localKeyName, key.name)
		return c.Next()
	}
}

// SignUserToken makes the token that lets a client post feedback for
// user until expiry.
func SignUserToken(secret []byte, user string, expiry time.Time) string {
	exp := strconv.FormatInt(expiry.Unix(), 10)
	return base64.RawURLEncoding.EncodeToString([]byte(user)) + "." + exp + "." + userTokenMAC(secret, user, exp)
}

func userTokenMAC(secret []byte, user, exp string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenUser checks a user token and returns the user it was signed for.
func (k *Keys) tokenUser(token string, now time.Time) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("malformed user token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", errors.New("malformed user token")
	}
	user := string(raw)
	if !hmac.Equal([]byte(userTokenMAC(k.secret, user, parts[1])), []byte(parts[2])) {
		return "", errors.New("user token signature does not match")
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", errors.New("malformed user token")
	}
	if now.Unix() >= exp {
		return "", errors.New("user token expired")
	}
	return user, nil
}

// feedbackUser enforces the user token mode on a feedback post: the
// users the events name must all be the token's. users are the events'
// user ids.
func (k *Keys) feedbackUser(c *fiber.Ctx, now time.Time, users func() []string) error {
	if k == nil || k.userTokens == UserTokensOff {
		return nil
	}
	token := c.Get("X-User-Token")
	if token == "" {
		if k.userTokens == UserTokensRequired {
			return &requestError{status: http.StatusUnauthorized, code: CodeUnauthenticated, msg: "a user token is required (X-User-Token)"}
		}
		return nil
	}
	user, err := k.tokenUser(token, now)
	if err != nil {
		return &requestError{status: http.StatusUnauthorized, code: CodeUnauthenticated, msg: err.Error()}
	}
	for _, u := range users() {
		if u != user {
			return &requestError{status: http.StatusForbidden, code: CodePermissionDenied, field: "user_id",
				msg: "the user token is for another user"}
		}
	}
	return nil
}

// CheckExposure refuses an admin listener reachable from other machines
// without an admin key: who reaches the port could reload bundles. It
// returns a warning for a public API without any key (open by choice, but
// said out loud).
func CheckExposure(cfg Config, keys *Keys) (warning string, err error) {
	if cfg.AdminAddr != "" && !isLoopback(cfg.AdminAddr) && !keys.HasScope(ScopeAdmin) {
		return "", fmt.Errorf("server.admin_addr: %s is not a loopback address, and no API key has the admin scope (server.auth.keys, server.auth.keys_file or %s): add one or bind 127.0.0.1", cfg.AdminAddr, EnvAPIKeys)
	}
	if !isLoopback(cfg.Addr) && !keys.Enabled() {
		return fmt.Sprintf("server.addr %s is reachable from other machines and no API key is configured: anyone can query and post feedback", cfg.Addr), nil
	}
	return "", nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
