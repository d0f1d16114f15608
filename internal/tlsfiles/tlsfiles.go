// Package tlsfiles builds the client side of TLS from certificate files,
// the same way for every connection the service makes (Redis, Kafka).
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Config is a client's TLS as configuration spells it.
type Config struct {
	Enabled bool `yaml:"enabled"`
	// CAFile holds the PEM certificates that sign the server's; empty
	// trusts the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for servers that
	// require one (mutual TLS); both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must hold; empty
	// takes the host of the address.
	ServerName string `yaml:"server_name"`
}

// TLS reads the files and returns the client configuration, or nil when
// TLS is off. Errors name the key (tls.ca_file, ...).
func (t Config) TLS() (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
			return nil, errors.New("tls: files or server_name set but tls.enabled is false")
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", filepath.Base(t.CAFile))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("tls.cert_file and tls.key_file: set both or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
