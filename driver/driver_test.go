package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestLogin: without a provider the DSN's credentials are used; with one,
// its answer (an empty user keeps the DSN's); its error is a
// *CredentialsError that wraps ErrAuthFailed and the provider's error and
// holds no password. Printing a Config never calls the provider.
func TestLogin(t *testing.T) {
	ctx := context.Background()
	cfg := Config{User: "app", Password: "dsn-Secret"}
	if u, p, err := cfg.Login(ctx, "h:1"); u != "app" || p != "dsn-Secret" || err != nil {
		t.Fatalf("no provider: %q %q %v", u, p, err)
	}
	calls := 0
	var answer struct {
		user, pass string
		err        error
	}
	cfg.Credentials = CredentialsFunc(func(context.Context) (string, string, error) {
		calls++
		return answer.user, answer.pass, answer.err
	})
	answer.pass = "token-1"
	if u, p, err := cfg.Login(ctx, "h:1"); u != "app" || p != "token-1" || err != nil {
		t.Fatalf("provider without a user: %q %q %v", u, p, err)
	}
	answer.user = "iam-user"
	if u, p, err := cfg.Login(ctx, "h:1"); u != "iam-user" || p != "token-1" || err != nil {
		t.Fatalf("provider with a user: %q %q %v", u, p, err)
	}
	answer.err = errors.New("token endpoint: 503")
	u, p, err := cfg.Login(ctx, "h:1")
	var ce *CredentialsError
	if u != "" || p != "" || !errors.Is(err, ErrAuthFailed) || !errors.Is(err, answer.err) || !errors.As(err, &ce) || ce.Addr != "h:1" {
		t.Fatalf("provider error: %q %q %v", u, p, err)
	}
	if msg := err.Error(); msg != "credentials provider failed for a connection to h:1: token endpoint: 503" {
		t.Fatalf("provider error text: %s", msg)
	}
	calls = 0
	s := fmt.Sprintf("%v %+v %#v %s %d", cfg, cfg, cfg, cfg, cfg)
	if calls != 0 || strings.Contains(s, "dsn-Secret") || strings.Contains(s, "token-1") || !strings.Contains(s, "Credentials:true") {
		t.Fatalf("printing the Config (%d provider calls): %s", calls, s)
	}
}
