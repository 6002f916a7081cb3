package sasl

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

const redacted = "<redacted>"

// formatRedacted implements fmt.Formatter for types holding secrets: every
// verb prints the redacted String form (%#v prints GoString), so no verb or
// flag can reach the fields themselves.
func formatRedacted(f fmt.State, verb rune, str, gostr string) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, gostr)
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(str))
	default:
		_, _ = io.WriteString(f, str)
	}
}

func secret(s string) string {
	if s == "" {
		return `""`
	}
	return redacted
}

// String describes c with the password, token and extension values
// redacted.
func (c Credentials) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sasl.Credentials{AuthzID:%q, Username:%q, Password:%s, Token:%s",
		c.AuthzID, c.Username, secret(c.Password), secret(c.Token))
	if c.Host != "" {
		fmt.Fprintf(&b, ", Host:%q", c.Host)
	}
	if c.Port != 0 {
		fmt.Fprintf(&b, ", Port:%d", c.Port)
	}
	if len(c.Extensions) > 0 {
		b.WriteString(", Extensions:[")
		for i, k := range sortedKeys(c.Extensions) {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%q:%s", k, redacted)
		}
		b.WriteString("]")
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String: %#v must not print the secrets either.
func (c Credentials) GoString() string { return c.String() }

// Format makes every fmt verb print the redacted form.
func (c Credentials) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, c.String(), c.GoString())
}

// LogValue keeps slog handlers (including JSON ones) from logging secrets.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("authzid", c.AuthzID),
		slog.String("username", c.Username),
		slog.String("password", secret(c.Password)),
		slog.String("token", secret(c.Token)),
	)
}

// MarshalJSON encodes c with the secrets redacted, so that a configuration
// struct or log record holding Credentials cannot leak them through
// encoding/json. (Unmarshalling is unaffected.)
func (c Credentials) MarshalJSON() ([]byte, error) {
	ext := make(map[string]string, len(c.Extensions))
	for k := range c.Extensions {
		ext[k] = redacted
	}
	return json.Marshal(struct {
		AuthzID    string            `json:",omitempty"`
		Username   string            `json:",omitempty"`
		Password   string            `json:",omitempty"`
		Token      string            `json:",omitempty"`
		Host       string            `json:",omitempty"`
		Port       int               `json:",omitempty"`
		Extensions map[string]string `json:",omitempty"`
	}{c.AuthzID, c.Username, redactNonEmpty(c.Password), redactNonEmpty(c.Token), c.Host, c.Port, ext})
}

func redactNonEmpty(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}
