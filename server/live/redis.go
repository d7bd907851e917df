package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// URL names the Redis deployment, in one of the forms that go-redis's
	// own parsers read (redis.ParseURL, redis.ParseClusterURL,
	// redis.ParseFailoverURL), with their query options (dial_timeout=,
	// read_timeout=, pool_size=, ...):
	//
	//	redis://[user:password@]host:port[/db]          one server (rediss:// for TLS)
	//	unix:///path/to/redis.sock[?db=0]               one server on a socket
	//	redis+cluster://host:port[?addr=host:port...]   a Redis Cluster: any nodes, the rest is discovered
	//	redis://host:port?addr=host:port[&addr=...]     a Redis Cluster too (several addresses)
	//	redis+sentinel://host:port[/db]?master_name=M[&addr=host:port...]   Sentinel: the sentinels' addresses
	//	redis://host:port?master_name=M[&addr=...]      Sentinel too
	URL string
	// Node is this node's id, unique in the cluster.
	Node string
	// Log gets reconnects and bad signals; nil discards.
	Log *slog.Logger
	// HealthInterval is how often a quiet subscription is pinged; a ping
	// unanswered for another interval ends the connection, which is then
	// made again. 0 means 1 s.
	HealthInterval time.Duration
}

// Redis is the live layer on Redis 7 or later: one server, Sentinel or a
// Cluster, through go-redis's UniversalClient. See docs/CLUSTER.md for its
// keys, channels and time base.
//
// Its only clock is Redis's: Record and Idle are Lua scripts that read
// TIME, and nothing here reads this node's wall clock (a test holds the
// package to it). The timers it has (pings, reconnect backoff) measure
// durations between calls, never a session's time.
type Redis struct {
	client  redis.UniversalClient
	cluster bool // signals need one subscription per channel
	node    string
	log     *slog.Logger
	health  time.Duration

	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	runs      sync.WaitGroup

	mu      sync.Mutex
	running bool
}

var _ Layer = (*Redis)(nil)

// The scripts. Both read Redis's TIME, in milliseconds; Redis 7 replicates
// a script's effects, so TIME before a write is allowed.
var (
	// recordScript: KEYS[1] the domain's hash; ARGV[1] its TTL in ms, then
	// pairs of session id and Ago in ms. Each session's field becomes
	// max(field, now - ago).
	recordScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local n = (#ARGV - 1) / 2
local sids = {}
for i = 1, n do sids[i] = ARGV[2 * i] end
local cur = redis.call('HMGET', key, unpack(sids))
local set = {}
for i = 1, n do
  local at = now - tonumber(ARGV[2 * i + 1])
  local c = tonumber(cur[i])
  if not c or c < at then
    set[#set + 1] = ARGV[2 * i]
    set[#set + 1] = string.format('%d', at)
  end
end
if #set > 0 then redis.call('HSET', key, unpack(set)) end
redis.call('PEXPIRE', key, ARGV[1])
return now
`)
	// idleScript: KEYS[1] the domain's hash, ARGV[1] the session id; the
	// milliseconds since its last activity, or nil.
	idleScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(v)
`)
)

// recordChunk is the most sessions one script call takes, so that one call
// never holds Redis for long and unpack stays far from Lua's stack limit.
const recordChunk = 512

// NewRedis connects to the Redis that o.URL names and checks that it
// answers.
func NewRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	if err := checkName("node", o.Node); err != nil {
		return nil, err
	}
	client, cluster, err := redisClient(o.URL, o.Node)
	if err != nil {
		return nil, err
	}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("live: redis at %s does not answer: %w", redactURL(o.URL), err)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	health := o.HealthInterval
	if health <= 0 {
		health = time.Second
	}
	return &Redis{client: client, cluster: cluster, node: o.Node, log: log, health: health, stop: make(chan struct{})}, nil
}

// redisClient parses raw (see RedisOptions.URL) and makes its client. The
// client honours each call's context deadline (go-redis's
// ContextTimeoutEnabled, off by default): otherwise a call to a Redis that
// has gone silent waits for the read timeout whatever its caller allows,
// and a node's deadline check would be that late.
func redisClient(raw, node string) (client redis.UniversalClient, cluster bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's error quotes the URL, password and all.
		return nil, false, errors.New("live: the redis URL does not parse")
	}
	scheme, form, _ := strings.Cut(u.Scheme, "+")
	q := u.Query()
	switch {
	case form == "" && q.Has("master_name"), form == "sentinel":
		raw = strings.Replace(raw, u.Scheme, scheme, 1)
		o, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, false, fmt.Errorf("live: the redis URL %s: %w", redactURL(raw), err)
		}
		if o.MasterName == "" {
			return nil, false, fmt.Errorf("live: the redis URL %s names no master_name for Sentinel", redactURL(raw))
		}
		if o.ClientName == "" {
			o.ClientName = clientName(node)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(o), false, nil
	case form == "" && q.Has("addr"), form == "cluster":
		raw = strings.Replace(raw, u.Scheme, scheme, 1)
		o, err := redis.ParseClusterURL(raw)
		if err != nil {
			return nil, false, fmt.Errorf("live: the redis URL %s: %w", redactURL(raw), err)
		}
		if o.ClientName == "" {
			o.ClientName = clientName(node)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClusterClient(o), true, nil
	case form == "":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, false, fmt.Errorf("live: the redis URL %s: %w", redactURL(raw), err)
		}
		if o.ClientName == "" {
			o.ClientName = clientName(node)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClient(o), false, nil
	default:
		return nil, false, fmt.Errorf("live: the redis URL's scheme %q: want redis, rediss, unix, redis+cluster or redis+sentinel", u.Scheme)
	}
}

// clientName is what CLIENT LIST shows for this node's connections.
func clientName(node string) string {
	return "idleguard-" + strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, node)
}

// redactURL is raw without its password, for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func (r *Redis) closed() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// Record writes the batch, one script call per domain (per recordChunk
// sessions), then publishes it, one SPUBLISH per channel. The two are two
// pipelines, not one: on a Cluster a pipeline's commands go to each shard
// at once, and a signal could overtake its write; after a restart a
// pipelined EVALSHA fails with NOSCRIPT while the SPUBLISH behind it goes
// through. Writing first means a node that hears the signal reads the
// activity, and a failed write publishes nothing.
func (r *Redis) Record(ctx context.Context, batch []Activity) error {
	if r.closed() {
		return ErrClosed
	}
	batches, err := coalesce(batch)
	if err != nil || len(batches) == 0 {
		return err
	}
	var msgs []channelMessage
	for _, cs := range activitySignals(r.node, batches) {
		p, err := EncodeSignal(cs.signal)
		if err != nil {
			return err
		}
		msgs = append(msgs, channelMessage{cs.channel, p})
	}
	if err := r.write(ctx, batches); err != nil {
		return err
	}
	return r.send(ctx, msgs)
}

// write runs the record script for every domain of the batch in one
// pipeline, and once more with EVAL for the calls whose script Redis had
// lost (a restart, SCRIPT FLUSH).
func (r *Redis) write(ctx context.Context, batches []domainBatch) error {
	type call struct {
		key  string
		args []any
	}
	ttl := strconv.FormatInt(KeyTTL.Milliseconds(), 10)
	var calls []call
	for _, b := range batches {
		for s := b.sessions; len(s) > 0; {
			n := min(len(s), recordChunk)
			args := make([]any, 0, 1+2*n)
			args = append(args, ttl)
			for _, x := range s[:n] {
				args = append(args, x.sid, x.ago.Milliseconds())
			}
			calls = append(calls, call{activityKey(b.domain), args})
			s = s[n:]
		}
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = recordScript.EvalSha(ctx, pipe, []string{c.key}, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command's error is read below
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			if !redis.HasErrorPrefix(err, "NOSCRIPT") {
				return fmt.Errorf("live: record activity: %w", err)
			}
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return nil
	}
	pipe = r.client.Pipeline()
	for j, i := range again {
		cmds[j] = recordScript.Eval(ctx, pipe, []string{calls[i].key}, calls[i].args...)
	}
	_, _ = pipe.Exec(ctx)
	for _, cmd := range cmds[:len(again)] {
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("live: record activity: %w", err)
		}
	}
	return nil
}

// send publishes encoded signals, one pipeline.
func (r *Redis) send(ctx context.Context, msgs []channelMessage) error {
	if len(msgs) == 1 {
		if err := r.client.SPublish(ctx, channelNames[msgs[0].channel], msgs[0].payload).Err(); err != nil {
			return fmt.Errorf("live: publish: %w", err)
		}
		return nil
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(msgs))
	for i, m := range msgs {
		cmds[i] = pipe.SPublish(ctx, channelNames[m.channel], m.payload)
	}
	_, _ = pipe.Exec(ctx)
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("live: publish: %w", err)
		}
	}
	return nil
}

func (r *Redis) Idle(ctx context.Context, domain, sid string) (time.Duration, bool, error) {
	if err := checkSession(domain, sid); err != nil {
		return 0, false, err
	}
	if r.closed() {
		return 0, false, ErrClosed
	}
	ms, err := idleScript.Run(ctx, r.client, []string{activityKey(domain)}, sid).Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("live: idle: %w", err)
	}
	// Below 0 only if Redis's clock stepped back since the write.
	return time.Duration(max(ms, 0)) * time.Millisecond, true, nil
}

func (r *Redis) Forget(ctx context.Context, domain string, sids []string) error {
	if err := checkDomain(domain); err != nil {
		return err
	}
	if r.closed() {
		return ErrClosed
	}
	if len(sids) == 0 {
		return nil
	}
	if err := r.client.HDel(ctx, activityKey(domain), sids...).Err(); err != nil {
		return fmt.Errorf("live: forget: %w", err)
	}
	return nil
}

func (r *Redis) Publish(ctx context.Context, s Signal) error {
	if r.closed() {
		return ErrClosed
	}
	s.Node = r.node
	var msgs []channelMessage
	for _, cs := range split(s) {
		p, err := EncodeSignal(cs.signal)
		if err != nil {
			return err
		}
		msgs = append(msgs, channelMessage{cs.channel, p})
	}
	return r.send(ctx, msgs)
}

// Close stops a Run in progress, waits for it, and closes the client.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.stop)
		r.runs.Wait()
		err = r.client.Close()
	})
	return err
}
