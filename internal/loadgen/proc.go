package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// readRSS returns a process's resident set size in KiB (VmRSS of
// /proc/PID/status).
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("loadgen: reading RSS: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: parsing VmRSS %q: %w", rest, err)
		}
		return kb, nil
	}
	return 0, fmt.Errorf("loadgen: no VmRSS in /proc/%d/status", pid)
}

// procCPU is a process's CPU time so far, in clock ticks.
type procCPU struct {
	user, system int64
}

// readProcCPU reads utime and stime of /proc/PID/stat (fields 14, 15).
func readProcCPU(pid int) (procCPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, fmt.Errorf("loadgen: reading CPU time: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procCPU{}, fmt.Errorf("loadgen: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 15-3+1 {
		return procCPU{}, fmt.Errorf("loadgen: short /proc/%d/stat", pid)
	}
	var c procCPU
	for _, x := range []struct {
		dst   *int64
		field int
	}{{&c.user, 14}, {&c.system, 15}} {
		v, err := strconv.ParseInt(f[x.field-3], 10, 64)
		if err != nil {
			return procCPU{}, fmt.Errorf("loadgen: parsing /proc/%d/stat field %d: %w", pid, x.field, err)
		}
		*x.dst = v
	}
	return c, nil
}

// machineCPU is the machine's CPU time so far, in clock ticks, from the
// "cpu" line of /proc/stat.
type machineCPU struct {
	total, idle, iowait int64
}

func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, fmt.Errorf("loadgen: reading /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("loadgen: malformed /proc/stat")
	}
	var c machineCPU
	// user nice system idle iowait irq softirq steal (guest time is
	// already counted in user).
	for i, s := range f[1:] {
		if i >= 8 {
			break
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return machineCPU{}, fmt.Errorf("loadgen: parsing /proc/stat: %w", err)
		}
		c.total += v
		switch i {
		case 3:
			c.idle = v
		case 4:
			c.iowait = v
		}
	}
	return c, nil
}

// CPU is where CPU time went during a phase of the run.
type CPU struct {
	// Server is the server process's CPU use in cores (1.0 = one core busy
	// the whole phase); set with --server-pid.
	Server float64 `json:"server_cores,omitempty"`
	// ServerThreads samples the server's thread states every 10 ms.
	ServerThreads *Threads `json:"server_threads,omitempty"`
	// Tool is the load tool's own CPU use in cores (it runs on the same
	// machine and competes for the same cores).
	Tool float64 `json:"tool_cores"`
	// MachineBusy is the whole machine's busy share of all cores (0..1).
	MachineBusy float64 `json:"machine_busy"`
	// MachineIOWait is the whole machine's iowait share of all cores.
	MachineIOWait float64 `json:"machine_iowait"`
	// Other is the CPU, in cores, that neither the server (when its pid is
	// known) nor this tool used: other processes and kernel threads. On a
	// shared machine it says how much the figures were disturbed.
	Other float64 `json:"other_cores"`
}

// cpuProbe samples CPU counters at the start of a phase.
type cpuProbe struct {
	serverPID int
	server    procCPU
	tool      procCPU
	machine   machineCPU
	threads   *threadSampler
}

func startCPU(serverPID int) *cpuProbe {
	p := &cpuProbe{serverPID: serverPID}
	if serverPID > 0 {
		p.server, _ = readProcCPU(serverPID)
		p.threads = startThreadSampler(serverPID, 10*time.Millisecond)
	}
	p.tool, _ = readProcCPU(os.Getpid())
	p.machine, _ = readMachineCPU()
	return p
}

// stop returns the CPU use since start, over seconds of wall time.
// Counters it cannot read are left zero.
func (p *cpuProbe) stop(seconds float64) CPU {
	var c CPU
	if seconds <= 0 {
		return c
	}
	wall := seconds * clockTicks
	if p.threads != nil {
		th := p.threads.finish()
		c.ServerThreads = &th
	}
	if p.serverPID > 0 {
		if s, err := readProcCPU(p.serverPID); err == nil {
			c.Server = float64(s.user+s.system-p.server.user-p.server.system) / wall
		}
	}
	if t, err := readProcCPU(os.Getpid()); err == nil {
		c.Tool = float64(t.user+t.system-p.tool.user-p.tool.system) / wall
	}
	if m, err := readMachineCPU(); err == nil {
		if d := m.total - p.machine.total; d > 0 {
			c.MachineBusy = 1 - float64(m.idle-p.machine.idle+m.iowait-p.machine.iowait)/float64(d)
			c.MachineIOWait = float64(m.iowait-p.machine.iowait) / float64(d)
			c.Other = max(c.MachineBusy*float64(runtime.NumCPU())-c.Server-c.Tool, 0)
		}
	}
	return c
}

// Threads is what sampling a process's thread states found: on average
// how many threads were in uninterruptible sleep (D), which for parleyd is
// waiting on the disk (fsync). Waits counts, for D samples, the kernel
// function they waited in (/proc/PID/task/TID/wchan), when the kernel
// shows it.
type Threads struct {
	Samples  int64            `json:"samples"`
	DiskWait float64          `json:"disk_wait"`
	Waits    map[string]int64 `json:"waits,omitempty"`
}

// threadSampler samples a process's thread states until stopped.
type threadSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	res  Threads
}

func startThreadSampler(pid int, every time.Duration) *threadSampler {
	t := &threadSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop(every)
	return t
}

func (t *threadSampler) loop(every time.Duration) {
	defer close(t.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var disk int64
	waits := make(map[string]int64)
	dir := fmt.Sprintf("/proc/%d/task", t.pid)
	// The threads' stat files stay open and are read again from offset 0
	// (a /proc file regenerates its text on a read at 0): a sample is then
	// one pread per thread instead of open, read and close. The list of
	// threads is read again every 10 samples.
	files := make(map[string]*os.File)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	buf := make([]byte, 1024)
	for n := 0; ; n++ {
		select {
		case <-t.stop:
			if t.res.Samples > 0 {
				t.res.DiskWait = float64(disk) / float64(t.res.Samples)
			}
			if len(waits) > 0 {
				t.res.Waits = waits
			}
			return
		case <-tick.C:
		}
		if n%10 == 0 {
			tids, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			live := make(map[string]bool, len(tids))
			for _, tid := range tids {
				live[tid.Name()] = true
				if files[tid.Name()] == nil {
					if f, err := os.Open(dir + "/" + tid.Name() + "/stat"); err == nil {
						files[tid.Name()] = f
					}
				}
			}
			for name, f := range files {
				if !live[name] {
					f.Close()
					delete(files, name)
				}
			}
		}
		if len(files) == 0 {
			continue
		}
		t.res.Samples++
		for name, f := range files {
			m, err := f.ReadAt(buf, 0)
			if m == 0 && err != nil {
				continue // the thread ended
			}
			b := buf[:m]
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) {
				continue
			}
			if b[i+2] == 'D' {
				disk++
				if w, err := os.ReadFile(dir + "/" + name + "/wchan"); err == nil && len(w) > 0 && string(w) != "0" {
					waits[string(w)]++
				}
			}
		}
	}
}

// finish stops sampling and returns the result.
func (t *threadSampler) finish() Threads {
	close(t.stop)
	<-t.done
	return t.res
}
