package loadgen

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteText prints the report for people: setup, then parleyd and the echo
// baseline side by side.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	rate := "unlimited"
	if r.Run.Rate > 0 {
		rate = fmt.Sprintf("%g msgs/s", r.Run.Rate)
	}
	fmt.Fprintf(&b, "machine: %d CPUs, %s %s/%s, %.0f%% busy in the second before the run\n",
		r.Machine.CPUs, r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch, 100*r.Machine.BusyBefore)
	fmt.Fprintf(&b, "run: %d devices, %d senders, %gs, %d-byte payload, rate %s, %d source addresses\n",
		r.Run.Devices, r.Run.Senders, r.Run.DurationS, r.Run.Size, rate, r.Run.SourceAddrs)
	if r.Parley != nil {
		over := "HTTP (POST /v1/messages)"
		if r.Run.SendOver == SendOverWS {
			over = "WebSocket (\"send\" frames)"
		}
		fmt.Fprintf(&b, "parleyd: %d devices per account, sends over %s\n", r.Run.DevicesPerAccount, over)
	}
	if f := r.Fsync; f != nil {
		fmt.Fprintf(&b, "disk baseline: %.0f fsync'd 4 KiB appends/s in %s (p50 %.2f ms, p99 %.2f ms, max %.2f ms)\n",
			f.PerSec, f.Dir, f.Latency.P50, f.Latency.P99, f.Latency.Max)
	}
	if s := r.Setup; s != nil {
		fmt.Fprintf(&b, "setup: %d devices registered or linked in %.2fs (%d rate-limited retries), %d connected in %.2fs, %d accounts complete\n",
			s.Registered, s.RegisterSeconds, s.RateLimitedRetries, s.Connected, s.ConnectSeconds, s.Accounts)
		if len(s.Errors) > 0 {
			fmt.Fprintf(&b, "setup errors: %s\n", formatErrors(s.Errors))
		}
		if s.ServerRSSBeforeKB > 0 {
			fmt.Fprintf(&b, "server RSS: %.1f MiB before connecting, %.1f MiB connected (%.1f KiB per connection), %.1f MiB after the run\n",
				mib(s.ServerRSSBeforeKB), mib(s.ServerRSSConnKB), s.ServerBytesPerConn/1024, mib(s.ServerRSSAfterRunKB))
		}
	}
	b.WriteString("\n")

	var phases []*Phase
	line := fmt.Sprintf("%-22s", "")
	if r.Parley != nil {
		phases = append(phases, r.Parley)
		line += fmt.Sprintf("%16s", "parleyd")
	}
	if r.Echo != nil {
		phases = append(phases, r.Echo)
		line += fmt.Sprintf("%16s", "echo baseline")
	}
	b.WriteString(line + "\n")
	row := func(name string, f func(p *Phase) string) {
		line := fmt.Sprintf("%-22s", name)
		for _, p := range phases {
			line += fmt.Sprintf("%16s", f(p))
		}
		b.WriteString(line + "\n")
	}
	row("connections", func(p *Phase) string { return fmt.Sprint(p.Connections) })
	row("seconds", func(p *Phase) string { return fmt.Sprintf("%.2f", p.Seconds) })
	row("sends started", func(p *Phase) string { return fmt.Sprint(p.Attempts) })
	row("sends acked/s", func(p *Phase) string { return fmt.Sprintf("%.0f", p.AckedPerSec) })
	row("envelopes per send", func(p *Phase) string {
		if p.AckedEnvelopes == 0 || p.Acked == 0 {
			return "1"
		}
		return fmt.Sprintf("%.2f", float64(p.AckedEnvelopes)/float64(p.Acked))
	})
	row("deliveries/s", func(p *Phase) string { return fmt.Sprintf("%.0f", p.DeliveredPerSec) })
	row("latency p50 ms", func(p *Phase) string { return fmt.Sprintf("%.2f", p.Latency.P50) })
	row("latency p90 ms", func(p *Phase) string { return fmt.Sprintf("%.2f", p.Latency.P90) })
	row("latency p99 ms", func(p *Phase) string { return fmt.Sprintf("%.2f", p.Latency.P99) })
	row("latency max ms", func(p *Phase) string { return fmt.Sprintf("%.2f", p.Latency.Max) })
	row("acked, total", func(p *Phase) string { return fmt.Sprint(p.Acked) })
	row("envelopes due", func(p *Phase) string {
		if p.AckedEnvelopes == 0 {
			return fmt.Sprint(p.Acked)
		}
		return fmt.Sprint(p.AckedEnvelopes)
	})
	row("delivered, total", func(p *Phase) string { return fmt.Sprint(p.DeliveredTotal) })
	row("acked not delivered", func(p *Phase) string {
		if p.Check == nil {
			return "-"
		}
		return fmt.Sprint(p.Check.Missing)
	})
	row("duplicates", func(p *Phase) string {
		if p.Check == nil {
			return "-"
		}
		return fmt.Sprint(p.Check.Duplicates)
	})
	row("errors", func(p *Phase) string {
		var n int64
		for _, v := range p.Errors {
			n += v
		}
		return fmt.Sprint(n)
	})
	row("server CPU cores", func(p *Phase) string {
		if p.CPU.Server == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", p.CPU.Server)
	})
	row("server CPU ms/msg", func(p *Phase) string {
		if p.CPU.Server == 0 || p.Acked == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", p.CPU.Server*p.Seconds*1000/float64(p.Acked))
	})
	row("server threads D", func(p *Phase) string {
		if p.CPU.ServerThreads == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", p.CPU.ServerThreads.DiskWait)
	})
	row("tool CPU cores", func(p *Phase) string { return fmt.Sprintf("%.2f", p.CPU.Tool) })
	row("tool CPU us/delivery", func(p *Phase) string {
		if p.Delivered == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", p.CPU.Tool*p.Seconds*1e6/float64(p.Delivered))
	})
	row("machine busy", func(p *Phase) string { return fmt.Sprintf("%.0f%%", 100*p.CPU.MachineBusy) })
	row("other CPU cores", func(p *Phase) string { return fmt.Sprintf("%.2f", p.CPU.Other) })
	row("machine iowait", func(p *Phase) string { return fmt.Sprintf("%.0f%%", 100*p.CPU.MachineIOWait) })
	for _, x := range []struct {
		name string
		p    *Phase
	}{{"parleyd", r.Parley}, {"echo baseline", r.Echo}} {
		if x.p != nil && len(x.p.Errors) > 0 {
			fmt.Fprintf(&b, "%s errors: %s\n", x.name, formatErrors(x.p.Errors))
		}
	}
	if p := r.Parley; p != nil && p.CPU.ServerThreads != nil && len(p.CPU.ServerThreads.Waits) > 0 {
		fmt.Fprintf(&b, "parleyd threads in D state waited in: %s\n", formatTop(p.CPU.ServerThreads.Waits, 5))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatErrors(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// formatTop prints the n largest counts of m, largest first.
func formatTop(m map[string]int64, n int) string {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	if len(keys) > n {
		keys = keys[:n]
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
