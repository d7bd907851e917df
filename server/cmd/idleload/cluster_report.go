package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// clusterResult is the cluster table: the cluster's run, then the single
// node's.
type clusterResult struct {
	Config  string
	Code    string // git describe of the work tree
	Started time.Time
	Seconds float64
	Runs    []*fleetResult
}

// fleetResult is what one shape measured.
type fleetResult struct {
	Shape         fleetShape
	Sockets       int // planned: two a session
	Clients       int
	ConnectFailed int
	// EnginesSeconds is starting redis-server and PostgreSQL (initdb
	// included), PrepareSeconds writing the store, StartSeconds the nodes'
	// start (every live session loaded, and on a cluster each one asked of
	// the live layer), ConnectSeconds opening the sockets.
	EnginesSeconds, PrepareSeconds, StartSeconds, ConnectSeconds float64
	Nodes                                                        []nodeResult
	// ConnectCPU and ConnectPG are what opening the sockets cost.
	ConnectCPU fleetCPU
	ConnectPG  pgDelta

	Expiration int64
	PutAt      time.Time // the setting change began
	SignOutAt  time.Time // the group's second began
	PutMs      float64
	Fanout     dist
	FanoutCPU  fleetCPU // in the 2 s from the change
	Late       dist     // wall clock: logout arrival - known deadline
	LateRem    dist     // client's monotonic clock cross-check
	Unexpected int      // sign-outs outside the group

	// The engines while idle (settle), around the sign-out second (from 2 s
	// before to 4 s after), during the first frames, and in each step.
	IdleRedis, SignOutRedis redisDelta
	IdlePG, SignOutPG       pgDelta
	Prime                   fleetStep
	Steps                   []fleetStep
	Best                    fleetStep // the most absorbed without a drop
	// Redis's used_memory before any node connected and at settle, and
	// the sessions its hash then holds.
	RedisMemBefore, RedisMemAfter, RedisSessions int64

	Closes map[int]int // close codes the clients received
	Errors int         // sockets ended without a close frame
	// ErrorTexts counts those by the client's error, group and node.
	ErrorTexts map[string]int
	ErrorAfter dist // s from opening to that end
	// ErrorPhase counts them by the phase the run was in when they ended.
	ErrorPhase map[string]int
	// CloseDetail counts every socket that ended, by close code (or none),
	// whether it was in the sign-out group and had its logout, and phase.
	CloseDetail map[string]int
	// ClosedFrames is how many frames the sockets that ended without a
	// close frame (1006, or reset) had received in all.
	ClosedFrames dist
	Phases       []phaseMark
	// IdleNodesCPU is the nodes' CPU while idle (settle), in CPUs.
	IdleNodesCPU float64
	Logs         []nodeLog
}

type nodeResult struct {
	Name      string
	PID       int
	OpenFiles int
	Sessions  int // live sessions on its idle clock at start
	Planned   int // sockets the plans put on it
	Held      int // at settle
	// Base is with every session loaded and no socket, Settle after
	// connecting and settling, Closed after every socket closed.
	Base, Settle, Closed sample
	FanoutWritten        float64 // ms from the change to its last text frame
	FanoutMax            float64 // ms from the change to the last of its sockets hearing it
	LateP99              float64
	Exited               string // set if it died during the run
}

type fleetCPU struct{ Nodes, Clients, Redis, PG float64 }

// tooManyDropped: more than 1% of the step's sockets ended during it (the
// ramp stops there).
func (st fleetStep) tooManyDropped() bool { return st.Dropped*100 > st.Sockets }

// phaseMark is when the run entered a phase.
type phaseMark struct {
	Name string
	At   int64 // Unix ns
}

type fleetStep struct {
	Rate       float64 // frames a second per socket asked of the clients
	Sockets    int64   // open ones outside the sign-out group, written to
	Frames     uint64  // read by the nodes in the window
	Seconds    float64
	PerSecond  float64
	Offered    float64 // frames/s the clients wrote
	Dropped    int64
	NodesCPU   float64
	CPUPer1000 float64
	Redis      redisDelta
	PG         pgDelta
}

// rssPerSocket is node k's RSS growth from its baseline per socket held at
// settle, in KiB.
func (r *fleetResult) rssPerSocket(k int) float64 {
	n := &r.Nodes[k]
	return perSocket(n.Settle.RSS, n.Base.RSS, n.Held) / kib
}

func (r *fleetResult) rssLine() string {
	var parts []string
	for k, n := range r.Nodes {
		parts = append(parts, fmt.Sprintf("%s %d sockets %.2f KiB each", n.Name, n.Held, r.rssPerSocket(k)))
	}
	return strings.Join(parts, ", ")
}

// judgeTiming reads every socket's story: when the changed setting
// arrived (from the PUT's start), and when its logout did against the
// deadline its session was given.
func (r *fleetResult) judgeTiming(f *fleet, reps []reply, putAt, due time.Time) {
	var fan, late, rem []float64
	fanNode := make([][]float64, len(f.nodes))
	lateNode := make([][]float64, len(f.nodes))
	missingFan, missingLate := 0, 0
	reasons := map[string]int{}
	for _, rep := range reps {
		for _, s := range rep.Sockets {
			if s.Frames == 0 && s.Code == 0 {
				continue // never connected
			}
			i := s.I / 2
			k := tabNode(i, s.I%2, len(f.nodes))
			if s.Fanout > 0 {
				v := ms(time.Unix(0, s.Fanout).Sub(putAt))
				fan = append(fan, v)
				fanNode[k] = append(fanNode[k], v)
			} else {
				missingFan++
			}
			if f.ds.late[i] < 0 {
				if s.Logout > 0 {
					r.Unexpected++
				}
				continue
			}
			if s.Logout == 0 {
				missingLate++
				continue
			}
			deadline := due.Add(time.Duration(f.ds.late[i]) * time.Millisecond)
			v := ms(time.Unix(0, s.Logout).Sub(deadline))
			late = append(late, v)
			lateNode[k] = append(lateNode[k], v)
			reasons[s.Reason]++
			if s.HasRem {
				rem = append(rem, float64(s.RemLate)/1000)
			}
		}
	}
	r.Fanout = newDist(fan)
	r.Fanout.Missing = missingFan
	r.Late = newDist(late)
	r.Late.Missing = missingLate
	r.Late.Reasons = reasons
	r.LateRem = newDist(rem)
	for k := range r.Nodes {
		r.Nodes[k].FanoutMax = newDist(fanNode[k]).Max
		r.Nodes[k].LateP99 = newDist(lateNode[k]).P99
	}
}

func (r *fleetResult) countCloses(f *fleet, reps []reply) {
	r.Closes = map[int]int{}
	r.ErrorTexts = map[string]int{}
	r.ErrorPhase = map[string]int{}
	var after []float64
	r.CloseDetail = map[string]int{}
	var closedFrames []float64
	for _, rep := range reps {
		for _, s := range rep.Sockets {
			late := f.ds.late[s.I/2] >= 0
			if s.Code != 0 || s.Err != "" {
				what := fmt.Sprint(s.Code)
				if s.Code == 0 {
					what = "no close frame"
				}
				group := "outside the group"
				if late {
					group = "in the group"
				}
				if late && s.Logout > 0 {
					what += " after its logout"
				}
				in := "before"
				for _, p := range r.Phases {
					if p.At <= s.EndAt {
						in = p.Name
					}
				}
				r.CloseDetail[fmt.Sprintf("%s, %s, during %s", what, group, in)]++
				if s.Code == 1006 || s.Code == 0 {
					closedFrames = append(closedFrames, float64(s.Frames))
				}
			}
			if s.Code != 0 {
				r.Closes[s.Code]++
			} else if s.Err != "" {
				r.Errors++
				if s.OpenAt > 0 && s.EndAt > 0 {
					after = append(after, float64(s.EndAt-s.OpenAt)/1e9)
				}
				in := "before"
				for _, p := range r.Phases {
					if p.At <= s.EndAt {
						in = p.Name
					}
				}
				r.ErrorPhase[in]++
				group := "outside the sign-out group"
				if f.ds.late[s.I/2] >= 0 {
					group = "in the sign-out group"
				}
				text := s.Err
				if i := strings.LastIndex(text, ": "); i >= 0 {
					text = text[i+2:] // the cause, without the addresses
				}
				r.ErrorTexts[fmt.Sprintf("%s, %s on %s", text, group, nodeName(f.shape, tabNode(s.I/2, s.I%2, len(f.nodes))))]++
			}
		}
	}
	// When they ended, in s after they opened (the hub's pong wait is 60 s).
	r.ErrorAfter = newDist(after)
	r.ClosedFrames = newDist(closedFrames)
}

// nodeLog is what a node's log says beyond the ordinary: its warnings and
// errors, counted by message, with the first few lines.
type nodeLog struct {
	Node   string
	Counts map[string]int // "level msg" -> lines
	First  []string
	// SettingMs is when the node logged the setting change, in ms after
	// the PUT began (-1 if it did not); SignedOut the idle sign-outs it
	// logged from 1 s before the group's second on, the first and last
	// of them in ms after the second began.
	SettingMs               float64
	SignedOut               int
	SignedFirst, SignedLast float64
}

// logTime is a log line's time= field.
func logTime(line string) (time.Time, bool) {
	v, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}, false
	}
	if i := strings.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

func scanNodeLogs(dir string, nodes int, shape fleetShape, putAt, due time.Time) []nodeLog {
	var out []nodeLog
	for k := range nodes {
		name := nodeName(shape, k)
		nl := nodeLog{Node: name, Counts: map[string]int{}, SettingMs: -1}
		f, err := os.Open(filepath.Join(dir, name+".log"))
		if err != nil {
			nl.Counts["log unreadable: "+err.Error()]++
			out = append(out, nl)
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if t, ok := logTime(line); ok {
				switch {
				case strings.Contains(line, `msg="expiration time changed"`) && !t.Before(putAt) && nl.SettingMs < 0:
					nl.SettingMs = ms(t.Sub(putAt))
				case strings.Contains(line, `msg="signed out"`) && strings.Contains(line, "reason=idle") && !t.Before(due.Add(-time.Second)):
					v := ms(t.Sub(due))
					if nl.SignedOut == 0 {
						nl.SignedFirst = v
					}
					nl.SignedOut++
					nl.SignedLast = v
				}
			}
			level := ""
			switch {
			case strings.Contains(line, "level=ERROR"):
				level = "ERROR"
			case strings.Contains(line, "level=WARN"):
				level = "WARN"
			case strings.HasPrefix(line, "panic:"), strings.HasPrefix(line, "fatal error:"):
				level = "PANIC"
			default:
				continue
			}
			msg := line
			if i := strings.Index(line, "msg="); i >= 0 {
				msg = line[i+4:]
				if strings.HasPrefix(msg, `"`) {
					if j := strings.Index(msg[1:], `"`); j >= 0 {
						msg = msg[:j+2]
					}
				} else if j := strings.IndexByte(msg, ' '); j >= 0 {
					msg = msg[:j]
				}
			}
			nl.Counts[level+" "+msg]++
			if len(nl.First) < 3 {
				nl.First = append(nl.First, line)
			}
		}
		f.Close()
		out = append(out, nl)
	}
	return out
}
