package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestProcStatReadAt checks what the thread sampler relies on: a /proc
// stat file kept open and read again at offset 0 gives the thread's
// current figures, not the first read's.
func TestProcStatReadAt(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/stat", syscall.Gettid()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	utime := func() int64 {
		buf := make([]byte, 1024)
		n, err := f.ReadAt(buf, 0)
		if n == 0 {
			t.Fatal(err)
		}
		b := buf[:n]
		fields := bytes.Fields(b[bytes.LastIndexByte(b, ')')+2:])
		v, err := strconv.ParseInt(string(fields[11]), 10, 64) // field 14, utime
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := utime()
	// Spin on this thread until its user time moves (clock ticks of 10 ms),
	// at most 20 s.
	deadline := time.Now().Add(20 * time.Second)
	x := 0
	for utime() == first {
		for i := range 1_000_000 {
			x += i
		}
		if time.Now().After(deadline) {
			t.Fatalf("utime still %d after 20 s of spinning (%d)", first, x)
		}
	}
}

// TestThreadSampler samples this process's threads every millisecond for
// a second and must have counted samples (a generous margin: the first
// sample is due after one).
func TestThreadSampler(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	s := startThreadSampler(os.Getpid(), time.Millisecond)
	time.Sleep(time.Second)
	if res := s.finish(); res.Samples == 0 {
		t.Fatalf("no samples: %+v", res)
	}
}
