package loadgen

import "sync"

// tracker remembers, per message id, whether the server acknowledged the
// send and how many times it was delivered, so a run can report messages
// acknowledged but never delivered, and duplicates. It is sharded to keep
// lock contention out of the measurement.
type tracker struct {
	shards [64]trackerShard
}

type trackerShard struct {
	mu sync.Mutex
	m  map[msgID]trackState
}

type trackState struct {
	acked     bool
	delivered uint32
}

// msgID is a message id in binary: run (4) || sender (4) || sequence (8).
type msgID [16]byte

func newTracker() *tracker {
	t := &tracker{}
	for i := range t.shards {
		t.shards[i].m = make(map[msgID]trackState)
	}
	return t
}

func (t *tracker) shard(id msgID) *trackerShard {
	// The sequence's low byte spreads one sender's messages over the shards.
	return &t.shards[int(id[15]^id[7])%len(t.shards)]
}

func (t *tracker) acked(id msgID) {
	s := t.shard(id)
	s.mu.Lock()
	st := s.m[id]
	st.acked = true
	s.m[id] = st
	s.mu.Unlock()
}

func (t *tracker) delivered(id msgID) {
	s := t.shard(id)
	s.mu.Lock()
	st := s.m[id]
	st.delivered++
	s.m[id] = st
	s.mu.Unlock()
}

// Check is the outcome of comparing acknowledged sends with deliveries.
type Check struct {
	// Missing counts sends the server acknowledged (HTTP 200) that no
	// receiver got by the end of the drain period.
	Missing int64 `json:"missing"`
	// Duplicates counts deliveries beyond the first of one message.
	Duplicates int64 `json:"duplicates"`
	// Unacknowledged counts messages delivered whose send the sender never
	// saw acknowledged (a request that timed out after the server
	// committed it, for example). They are not errors of the server.
	Unacknowledged int64 `json:"delivered_unacknowledged"`
}

func (t *tracker) check() Check {
	var c Check
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, st := range s.m {
			switch {
			case st.acked && st.delivered == 0:
				c.Missing++
			case !st.acked && st.delivered > 0:
				c.Unacknowledged++
			}
			if st.delivered > 1 {
				c.Duplicates += int64(st.delivered - 1)
			}
		}
		s.mu.Unlock()
	}
	return c
}
