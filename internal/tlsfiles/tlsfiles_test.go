package tlsfiles

import (
	"strings"
	"testing"

	"github.com/recsys-dev/recsys/internal/tlsfiles/tlstest"
)

func TestConfig_TLS(t *testing.T) {
	ca, cert, key := tlstest.CA(t)
	if c, err := (Config{}).TLS(); c != nil || err != nil {
		t.Fatalf("off: %v, %v", c, err)
	}
	c, err := Config{Enabled: true, CAFile: ca, CertFile: cert, KeyFile: key, ServerName: "localhost"}.TLS()
	if err != nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "localhost" {
		t.Fatalf("full: %+v, %v", c, err)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Enabled: true, CAFile: cert + ".missing"}, "tls.ca_file"},
		{Config{Enabled: true, CAFile: key}, "holds no PEM certificate"},
		{Config{Enabled: true, CertFile: cert}, "set both or neither"},
		{Config{CAFile: ca}, "tls.enabled is false"},
	} {
		if _, err := tt.cfg.TLS(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
