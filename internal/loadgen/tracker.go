package loadgen

import "sync"

// tracker remembers, per envelope (message id and recipient device),
// whether the server acknowledged the send and how many times the device
// got it, so a run can report envelopes acknowledged but never delivered,
// and duplicates. It is sharded to keep lock contention out of the
// measurement.
type tracker struct {
	shards [64]trackerShard
}

type trackerShard struct {
	mu sync.Mutex
	m  map[trackKey]trackState
}

// trackKey is one envelope: a message and the index of the device it is
// for.
type trackKey struct {
	id  msgID
	dev uint32
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
		t.shards[i].m = make(map[trackKey]trackState)
	}
	return t
}

func (t *tracker) shard(k trackKey) *trackerShard {
	// The sequence's low byte spreads one sender's messages over the
	// shards, the device's one message's envelopes.
	return &t.shards[int(k.id[15]^k.id[7]^byte(k.dev))%len(t.shards)]
}

// acked records that the send of message id, with an envelope for device
// dev, was acknowledged.
func (t *tracker) acked(id msgID, dev uint32) {
	k := trackKey{id, dev}
	s := t.shard(k)
	s.mu.Lock()
	st := s.m[k]
	st.acked = true
	s.m[k] = st
	s.mu.Unlock()
}

// delivered records that device dev received message id.
func (t *tracker) delivered(id msgID, dev uint32) {
	k := trackKey{id, dev}
	s := t.shard(k)
	s.mu.Lock()
	st := s.m[k]
	st.delivered++
	s.m[k] = st
	s.mu.Unlock()
}

// Check is the outcome of comparing acknowledged sends with deliveries,
// envelope by envelope: a message sent to an account of K devices by an
// account of K devices is 2K-1 envelopes, each for one device.
type Check struct {
	// Missing counts envelopes of sends the server acknowledged that their
	// device did not get by the end of the drain period.
	Missing int64 `json:"missing"`
	// Duplicates counts deliveries beyond the first of one envelope.
	Duplicates int64 `json:"duplicates"`
	// Unacknowledged counts envelopes delivered whose send the sender
	// never saw acknowledged (a request that timed out after the server
	// committed it, for example), or that were for no device the send
	// named. They are not errors of the server when the sends timed out.
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
