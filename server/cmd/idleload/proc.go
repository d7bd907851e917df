package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// What the kernel says about a process, read from /proc (Linux only).

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux this runs on (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// rssBytes is the process's resident set (VmRSS).
func rssBytes(pid int) (int64, error) {
	v, ok, err := procLine(pid, "status", "VmRSS:")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("no VmRSS for pid %d", pid)
	}
	kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return kb << 10, err
}

// cpuSeconds is the process's user plus system CPU time.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("odd /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("odd /proc/%d/stat", pid)
	}
	return float64(u+st) / clockTicks, nil
}

// openFilesLimit is the soft limit on open files of process pid, from
// /proc/<pid>/limits.
func openFilesLimit(pid int) (int, error) {
	rest, ok, err := procLine(pid, "limits", "Max open files")
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(rest)
	switch {
	case !ok || len(fields) == 0:
		return 0, fmt.Errorf("no open files limit for pid %d", pid)
	case fields[0] == "unlimited":
		return 1 << 30, nil
	}
	return strconv.Atoi(fields[0])
}

// procLine is the rest of the first line of /proc/<pid>/<file> that starts
// with prefix; ok is false if no line does.
func procLine(pid int, file, prefix string) (rest string, ok bool, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return rest, true, nil
		}
	}
	return "", false, nil
}

// ownLimits returns this process's soft and hard open-files limits, after
// raising the soft one to the hard one (children inherit it).
func ownLimits() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, 0, err
		}
	}
	return rl.Cur, rl.Max, nil
}

// sysctl reads one /proc/sys value, for the report.
func sysctl(path string) string {
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}
