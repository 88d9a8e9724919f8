package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/parleychat/parley/internal/client"
)

// progressBar draws a transfer's progress on one line of a terminal:
// phase, name, a bar, bytes, speed and time left. It draws at most ten
// times a second and only when standard error is a terminal and the
// output is not --json; otherwise it draws nothing.
type progressBar struct {
	w     io.Writer
	width int

	mu      sync.Mutex
	key     string // phase and id of the transfer on the line
	start   time.Time
	first   int64 // bytes done when the transfer was first seen (a resume)
	last    time.Time
	drawn   bool
	samples []sample // recent positions, for the speed
}

type sample struct {
	at   time.Time
	done int64
}

// newProgress returns a progress bar for a, or nil when none should be
// drawn.
func (a *app) newProgress() *progressBar {
	if a.json {
		return nil
	}
	f, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width < 40 {
		width = 80
	}
	return &progressBar{w: a.stderr, width: width}
}

// report is a client.Progress callback (nil-safe: a nil bar reports
// nothing).
func (p *progressBar) report() func(client.Progress) {
	if p == nil {
		return nil
	}
	return p.update
}

func (p *progressBar) update(pr client.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	key := pr.Phase + " " + pr.ID
	if key != p.key {
		p.finishLocked()
		p.key, p.start, p.first, p.samples = key, now, pr.Done, nil
	}
	p.samples = append(p.samples, sample{now, pr.Done})
	for len(p.samples) > 2 && now.Sub(p.samples[0].at) > 5*time.Second {
		p.samples = p.samples[1:]
	}
	if pr.Done < pr.Total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	p.drawn = true
	fmt.Fprint(p.w, "\r"+p.line(pr)+"\x1b[K")
	if pr.Done >= pr.Total {
		p.finishLocked()
	}
}

// line renders one progress line.
func (p *progressBar) line(pr client.Progress) string {
	pct := 100.0
	if pr.Total > 0 {
		pct = float64(pr.Done) * 100 / float64(pr.Total)
	}
	speed := 0.0
	if n := len(p.samples); n >= 2 {
		a, b := p.samples[0], p.samples[n-1]
		if d := b.at.Sub(a.at).Seconds(); d > 0 {
			speed = float64(b.done-a.done) / d
		}
	}
	left := "--:--"
	if speed > 0 && pr.Total >= pr.Done {
		left = clock(time.Duration(float64(pr.Total-pr.Done) / speed * float64(time.Second)))
	}
	if pr.Done >= pr.Total {
		left = clock(time.Since(p.start))
	}
	stats := fmt.Sprintf(" %3.0f%% %s/%s %s/s %s", pct, humanBytes(pr.Done), humanBytes(pr.Total), humanBytes(int64(speed)), left)
	name := pr.Name
	head := pr.Phase + " " + name + " "
	barWidth := p.width - len(head) - len(stats) - 3
	if barWidth < 10 {
		if room := p.width - len(stats) - len(pr.Phase) - 8; room > 3 && len(name) > room {
			name = name[:room-1] + "…"
		}
		head = pr.Phase + " " + name + " "
		barWidth = max(10, p.width-len(head)-len(stats)-3)
	}
	filled := int(float64(barWidth) * pct / 100)
	filled = min(max(filled, 0), barWidth)
	return head + "[" + strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled) + "]" + stats
}

// finishLocked ends the current line.
func (p *progressBar) finishLocked() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
	p.drawn = false
	p.key = ""
}

// done ends the line of a transfer that stopped early.
func (p *progressBar) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
}

// clock writes a duration as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// humanBytes writes a size in B, KiB, MiB, GiB or TiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return ""
}
