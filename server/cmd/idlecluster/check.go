package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// checkWait bounds each request of the quick check.
const checkWait = 15 * time.Second

// quickCheck does what a till does, through nginx: signs in as acme's
// cashier and opens a socket as its page would, once per node (round robin
// spreads them, nginx's access log tells), each answered by the session's
// state. The sign-in lands on one node and the sockets on all three: every
// node takes the others' tokens.
func (c *cluster) quickCheck(ctx context.Context) error {
	cfg, con := c.cfg, c.con
	shop := fmt.Sprintf("acme.localhost:%d", cfg.port)
	origin := "http://" + shop
	// *.localhost is loopback, as browsers and curl have it; Go's
	// resolver does not know, so every dial goes to 127.0.0.1.
	nginx := addr(cfg.port)
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, nginx)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	client := &http.Client{Jar: jar, Timeout: checkWait, Transport: &http.Transport{DialContext: dial}}

	req, err := http.NewRequestWithContext(ctx, "POST", origin+"/api/login",
		strings.NewReader(`{"username":"cashier","password":"demo"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", origin)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("quick check: sign-in: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("quick check: POST %s/api/login: got %s %s, want 200", origin, resp.Status, body)
	}
	var in struct {
		Token     string `json:"token"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Token == "" {
		return fmt.Errorf("quick check: sign-in answered %s: no token", body)
	}
	con.printf("quick check: signed in as cashier on %s through nginx (%d s to go)", origin, in.ExpiresIn)

	accessLog := filepath.Join(cfg.dir, "nginx", "access.log")
	var logged int64
	if fi, err := os.Stat(accessLog); err == nil {
		logged = fi.Size()
	}
	dialer := &websocket.Dialer{NetDialContext: dial, Jar: jar, HandshakeTimeout: checkWait}
	for i := range nodes {
		frame, err := openSocket(ctx, dialer, "ws://"+shop+"/ws", origin)
		if err != nil {
			return fmt.Errorf("quick check: socket %d: %w", i+1, err)
		}
		con.printf("quick check: socket %d open through nginx, first frame %q", i+1, short(frame))
	}
	// Signed out again, so that quick checks leave no sessions behind in
	// ./data/cluster.
	req, err = http.NewRequestWithContext(ctx, "POST", origin+"/api/logout", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", origin)
	resp, err = client.Do(req)
	if err != nil {
		return fmt.Errorf("quick check: sign-out: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("quick check: POST %s/api/logout: got %s, want 2xx", origin, resp.Status)
	}
	upstreams, err := socketUpstreams(ctx, accessLog, logged, nodes)
	if err != nil {
		return fmt.Errorf("quick check: %w", err)
	}
	if !distinct(upstreams) {
		return fmt.Errorf("quick check: the sockets landed on %s, want each node once", strings.Join(upstreams, ", "))
	}
	con.printf("quick check passed: the sockets landed on %s", strings.Join(upstreams, ", "))
	return nil
}

// socketUpstreams reads nginx's access log from offset until n socket
// requests are there (nginx logs one when it closes) and returns the node
// that answered each.
func socketUpstreams(ctx context.Context, path string, offset int64, n int) ([]string, error) {
	deadline := time.Now().Add(checkWait)
	for {
		var ups []string
		data, err := os.ReadFile(path)
		if err == nil && int64(len(data)) >= offset {
			for _, line := range strings.Split(string(data[offset:]), "\n") {
				if _, up, ok := strings.Cut(line, " upstream="); ok && strings.Contains(line, `"GET /ws `) {
					ups = append(ups, up)
				}
			}
		}
		if len(ups) >= n {
			return ups, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %d of %d sockets logged after %v (%v)", path, len(ups), n, checkWait, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func distinct(s []string) bool {
	seen := make(map[string]bool, len(s))
	for _, v := range s {
		if seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

// openSocket opens the socket with the session's cookie, reads the first
// frame, wants it to be the session's state, and closes.
func openSocket(ctx context.Context, d *websocket.Dialer, url, origin string) (string, error) {
	ws, resp, err := d.DialContext(ctx, url, http.Header{"Origin": {origin}})
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			return "", fmt.Errorf("GET %s: %w: %s %s", url, err, resp.Status, body)
		}
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(checkWait))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	if !strings.HasPrefix(string(msg), "state ") {
		return string(msg), fmt.Errorf("first frame %q, want a state frame", msg)
	}
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return string(msg), nil
}

// short cuts the token off a frame for printing.
func short(frame string) string {
	if i := strings.Index(frame, " token="); i >= 0 {
		return frame[:i] + " token=..."
	}
	return frame
}
