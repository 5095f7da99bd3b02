package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc's CPU times; 100 on every Linux platform Go
// supports.
const clockTicks = 100

// cpuSample is the CPU time used so far by this process and each of its descendants,
// grouped by what they are, and the machine's idle, I/O wait and stolen time, from /proc.
type cpuSample struct {
	at                  time.Time
	used                map[string]time.Duration
	idle, iowait, steal time.Duration
	known               bool // false off Linux: nothing to print
}

// sampleCPU reads /proc. names maps the pids the stack started to what they are (the
// webhook and the controller run the same binary); other descendants go by command name.
func sampleCPU(names map[int]string) cpuSample {
	s := cpuSample{at: time.Now(), used: map[string]time.Duration{}}
	if runtime.GOOS != "linux" {
		return s
	}
	self := os.Getpid()
	type proc struct {
		ppid int
		comm string
		cpu  time.Duration
	}
	procs := map[int]proc{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		data, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid … utime stime: comm may hold spaces and parentheses.
		line := string(data)
		open, closing := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(line[closing+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		procs[pid] = proc{ppid: ppid, comm: line[open+1 : closing], cpu: ticks(utime + stime)}
	}
	for pid, p := range procs {
		name, ours := "bench", pid == self
		for up := p.ppid; !ours && up > 1; up = procs[up].ppid {
			ours = up == self
		}
		if !ours {
			continue
		}
		if pid != self {
			name = p.comm
			if n, ok := names[pid]; ok {
				name = n
			}
		}
		s.used[name] += p.cpu
	}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		// cpu  user nice system idle iowait irq softirq steal …
		if f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0]); len(f) > 8 {
			field := func(i int) time.Duration { n, _ := strconv.ParseInt(f[i], 10, 64); return ticks(n) }
			s.idle, s.iowait, s.steal = field(4), field(5), field(8)
		}
	}
	s.known = true
	return s
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }

// cpuUse prints the cores each part used between two samples, busiest first, what the
// machine left idle (I/O wait apart: idle cores waiting on a disk, etcd's fsyncs), and
// what the hypervisor took for others (stolen: a shared machine's noise).
func cpuUse(before, after cpuSample) string {
	if !before.known || !after.known {
		return "unknown (not Linux)"
	}
	wall := after.at.Sub(before.at).Seconds()
	type part struct {
		name  string
		cores float64
	}
	var parts []part
	for name, t := range after.used {
		if c := (t - before.used[name]).Seconds() / wall; c >= 0.005 {
			parts = append(parts, part{name, c})
		}
	}
	slices.SortFunc(parts, func(a, b part) int {
		if a.cores > b.cores {
			return -1
		}
		if a.cores < b.cores {
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, 0, len(parts)+1)
	for _, p := range parts {
		out = append(out, fmt.Sprintf("%s %.2f", p.name, p.cores))
	}
	share := func(a, b time.Duration) float64 { return (a - b).Seconds() / wall }
	out = append(out, fmt.Sprintf("idle %.2f, I/O wait %.2f, stolen %.2f of %d",
		share(after.idle, before.idle), share(after.iowait, before.iowait), share(after.steal, before.steal), runtime.NumCPU()))
	return strings.Join(out, ", ") + " cores"
}
