package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// RedisError is an error reply of the server, e.g. "WRONGPASS invalid
// username-password pair" or "MOVED 3999 127.0.0.1:30001".
type RedisError string

func (e RedisError) Error() string { return string(e) }

// ErrNil is returned by [Server.Do] for a nil reply (e.g. GET of a missing
// key).
var ErrNil = errors.New("redistest: nil reply")

// DefaultTimeout bounds [Server.Do]: dialing, authenticating and the reply.
const DefaultTimeout = 5 * time.Second

// endpoint is what a connection needs: where and how to connect and log in.
type endpoint struct {
	addr     string
	tls      *tls.Config
	user     string
	password string
}

// do opens a connection, authenticates, sends one command and reads its reply.
// A new connection per command keeps things simple and is cheap on loopback.
func (e endpoint) do(ctx context.Context, args ...string) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("redistest: empty command")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var conn net.Conn
	var err error
	if e.tls != nil {
		d := tls.Dialer{Config: e.tls}
		conn, err = d.DialContext(ctx, "tcp", e.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", e.addr)
	}
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return nil, err
	}
	// Close the connection when ctx is cancelled before its deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	r := bufio.NewReader(conn)
	var auth []string
	switch {
	case e.user != "":
		auth = []string{"AUTH", e.user, e.password}
	case e.password != "":
		auth = []string{"AUTH", e.password}
	}
	if auth != nil {
		if err := writeCommand(conn, auth); err != nil {
			return nil, err
		}
		v, err := readReply(r)
		if err != nil {
			return nil, err
		}
		if re, ok := v.(RedisError); ok {
			return nil, re
		}
	}
	if err := writeCommand(conn, args); err != nil {
		return nil, err
	}
	v, err := readReply(r)
	if err != nil {
		return nil, err
	}
	if re, ok := v.(RedisError); ok {
		return nil, re
	}
	return v, nil
}

func writeCommand(w io.Writer, args []string) error {
	b := make([]byte, 0, 64)
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	_, err := w.Write(b)
	return err
}

// readReply reads one RESP2 reply: string (simple or bulk), int64, nil,
// RedisError, or []any of those.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("redistest: malformed reply line %q", line)
	}
	line = line[:len(line)-2]
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return RedisError(line[1:]), nil
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, fmt.Errorf("redistest: malformed bulk length %q", line)
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, fmt.Errorf("redistest: malformed array length %q", line)
		}
		if n < 0 {
			return nil, nil
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return arr, nil
	}
	return nil, fmt.Errorf("redistest: unsupported reply type %q", line)
}

// replyString renders a reply as text: arrays become one element per line
// (nested arrays flattened), nil elements empty lines.
func replyString(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", ErrNil
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case RedisError:
		return "", v
	case []any:
		var sb strings.Builder
		flatten(&sb, v)
		return strings.TrimSuffix(sb.String(), "\n"), nil
	}
	return fmt.Sprint(v), nil
}

func flatten(sb *strings.Builder, arr []any) {
	for _, e := range arr {
		switch e := e.(type) {
		case []any:
			flatten(sb, e)
			continue
		case nil:
		case RedisError:
			sb.WriteString(string(e))
		default:
			fmt.Fprint(sb, e)
		}
		sb.WriteByte('\n')
	}
}

// parseInfo parses "key:value" lines of INFO / CLUSTER INFO.
func parseInfo(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m
}
