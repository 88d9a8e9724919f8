package server

import "time"

// Deep calls and idle connections.
//
// A delivery connection keeps two goroutines for its whole life (the
// delivery loop and the reader), and an idle one sits parked in them. The
// store's methods run deep (SQLite, in Go): had those goroutines called
// them directly, each would keep a stack of tens of KiB while it sits idle
// (until the garbage collector shrinks it), times every connected device.
// So they hand such calls to a callPool, whose workers keep their big
// stacks for the next call instead of growing a fresh goroutine's stack
// every time.

// callPoolIdle is how long a worker waits for another call before it
// exits.
const callPoolIdle = 5 * time.Second

// callPool runs functions on long-lived worker goroutines: a waiting
// worker if there is one, else a new one. Workers exit after callPoolIdle
// without work, so the pool is as large as the calls in flight at once
// have lately been.
type callPool struct {
	idle chan func() // unbuffered: a send succeeds only if a worker waits
}

func newCallPool() *callPool { return &callPool{idle: make(chan func())} }

// run runs f on a worker and waits for it.
func (p *callPool) run(f func()) {
	done := make(chan struct{})
	p.goOn(func() {
		defer close(done)
		f()
	})
	<-done
}

// goOn runs f on a worker, a waiting one if there is one, and does not
// wait for it.
func (p *callPool) goOn(f func()) {
	select {
	case p.idle <- f:
	default:
		go p.work(f)
	}
}

func (p *callPool) work(job func()) {
	job()
	t := time.NewTimer(callPoolIdle)
	defer t.Stop()
	for {
		select {
		case job = <-p.idle:
			job()
			t.Reset(callPoolIdle)
		case <-t.C:
			return
		}
	}
}

// onOwnStack runs f on p and returns its results.
func onOwnStack[T any](p *callPool, f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	p.run(func() { v, err = f() })
	return v, err
}
