package sqlitestore

import (
	"slices"
	"sort"
	"sync"

	"github.com/parleychat/parley/internal/store"
)

// Queue tails in memory.
//
// A connected device reads its queue on from the last seq it was sent
// (Pending with after = that seq), and once caught up it is woken for each
// new envelope: most Pending calls ask for what was committed a moment
// ago. The tail cache answers them without SQLite. For a device, a tail
// holds every queued envelope with seq > from, exactly: it is installed
// by a Pending whose SQL read reached the end of the queue (fewer rows
// than asked for, so the rows are all envelopes after from), and kept
// exact by every committed change to the device's queue, which the
// writer applies after the commit that made the change durable (never
// before: a tail never shows what a crash could lose) and before the
// writing call returns:
//
//   - new envelopes are appended (seq grows in commit order, since one
//     writer commits at a time and AUTOINCREMENT never reuses a seq, so
//     appending in commit order keeps the tail in seq order);
//   - acknowledged and expired envelopes are removed;
//   - a removed device loses its tail.
//
// A Pending with after >= from is answered from the tail; an earlier
// after, or no tail, reads SQLite. A tail is only installed if no change
// to the device was applied since just before the SQL read began (epoch):
// a change applied later was committed after the read's snapshot began
// or, if before, the install is refused, so an install never loses or
// resurrects an envelope. A tail longer than tailEntries is dropped: its
// device reads SQLite again until a read reaches the end of its queue.
// The cache holds tailBytes at most: to make room, arbitrary other tails
// are dropped (those of devices gone offline among them). A commit that
// fails clears every tail (its outcome on disk is unknown).
//
// Like the read cache (cache.go) this assumes that this process is the
// only writer of the database file.
type tailCache struct {
	mu    sync.Mutex
	tails map[deviceKey]*tail
	bytes int // accounted size of every tail and its envelopes
	// maxEntries and maxBytes are tailEntries and tailBytes (tests lower
	// them).
	maxEntries, maxBytes int
}

// Bounds of the tail cache.
const (
	tailEntries  = 256      // envelopes per device
	tailBytes    = 32 << 20 // every tail together (ciphertexts and overhead)
	tailOverhead = 160      // accounted per tail and per envelope besides its ciphertext
)

// tail is the end of one device's queue.
type tail struct {
	valid bool  // envs is every queued envelope with seq > from; false: a read is installing it
	from  int64 // see valid
	envs  []store.Envelope
	bytes int
	// epoch counts the committed changes applied to the device while this
	// entry was in the map.
	epoch uint64
}

func newTailCache() *tailCache {
	return &tailCache{tails: make(map[deviceKey]*tail), maxEntries: tailEntries, maxBytes: tailBytes}
}

// cloneBlob copies b as the driver reads a BLOB back: an empty one is nil.
func cloneBlob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

func envBytes(e *store.Envelope) int { return tailOverhead + len(e.Ciphertext) }

// pending answers Pending from k's tail, if it has one that covers after.
func (c *tailCache) pending(k deviceKey, after int64, limit int) ([]store.Envelope, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tails[k]
	if t == nil || !t.valid || after < t.from {
		return nil, false
	}
	i := sort.Search(len(t.envs), func(i int) bool { return t.envs[i].Seq > after })
	n := min(limit, len(t.envs)-i)
	if n <= 0 {
		return nil, true
	}
	out := make([]store.Envelope, n)
	for j := range out {
		e := t.envs[i+j]
		e.Ciphertext = cloneBlob(e.Ciphertext) // the caller may change it
		out[j] = e
	}
	return out, true
}

// fill is a Pending that reads SQLite and may install a tail from what it
// read.
type fill struct {
	t     *tail // nil: the cache is full, nothing to install
	epoch uint64
}

// beginFill is called just before the SQL read of k's queue.
func (c *tailCache) beginFill(k deviceKey) fill {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tails[k]
	if t == nil {
		if !c.makeRoom(tailOverhead, k) {
			return fill{}
		}
		t = &tail{bytes: tailOverhead}
		c.tails[k] = t
		c.bytes += t.bytes
	}
	return fill{t, t.epoch}
}

// endFill installs k's tail from rows, what a Pending(after, limit) read
// from SQLite after beginFill returned f, if the read reached the end of
// the queue (fewer rows than limit) and nothing changed k's queue since
// beginFill. rows are copied.
func (c *tailCache) endFill(k deviceKey, f fill, after int64, limit int, rows []store.Envelope) {
	if f.t == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := f.t
	if c.tails[k] != t {
		return // dropped meanwhile
	}
	size := tailOverhead
	for i := range rows {
		size += envBytes(&rows[i])
	}
	switch {
	case t.epoch != f.epoch || len(rows) >= limit:
		// Changed since the read began, or not the end of the queue.
	case t.valid && t.from <= after:
		return // a tail already covers as much
	case len(rows) > c.maxEntries || !c.makeRoom(size-t.bytes, k):
	default:
		t.valid, t.from = true, after
		t.envs = make([]store.Envelope, len(rows), max(len(rows), 4))
		for i, e := range rows {
			e.Ciphertext = cloneBlob(e.Ciphertext)
			t.envs[i] = e
		}
		c.bytes += size - t.bytes
		t.bytes = size
		return
	}
	if !t.valid {
		c.drop(k, t) // a placeholder nothing will install
	}
}

// makeRoom drops tails other than keep's, arbitrary ones (the device of
// each reads SQLite until its tail is installed again), until need more
// bytes fit; false if they cannot. c.mu is held.
func (c *tailCache) makeRoom(need int, keep deviceKey) bool {
	for k, t := range c.tails {
		if c.bytes+need <= c.maxBytes {
			break
		}
		if k != keep {
			c.drop(k, t)
		}
	}
	return c.bytes+need <= c.maxBytes
}

// drop removes k's entry t; c.mu is held.
func (c *tailCache) drop(k deviceKey, t *tail) {
	delete(c.tails, k)
	c.bytes -= t.bytes
}

// clear drops every tail.
func (c *tailCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.tails)
	c.bytes = 0
}

// queueChanges records what one write did to device queues, for the tail
// cache to apply once the write is committed.
type queueChanges struct {
	added   []store.Envelope // with Seq; Ciphertext still the caller's (copied if kept)
	removed []deviceSeqs     // acknowledged or expired
	dropped []deviceKey      // devices removed
}

type deviceSeqs struct {
	deviceKey
	seqs []int64
}

func (q *queueChanges) reset() {
	if q != nil {
		*q = queueChanges{}
	}
}

// apply applies committed changes, in commit order.
func (c *tailCache) apply(qs ...*queueChanges) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tails) == 0 {
		return
	}
	for _, q := range qs {
		if q == nil {
			continue
		}
		for i := range q.added {
			e := &q.added[i]
			k := deviceKey{e.Recipient, e.RecipientDevice}
			t := c.tails[k]
			if t == nil {
				continue
			}
			t.epoch++
			if !t.valid || e.Seq <= t.from {
				continue
			}
			size := envBytes(e)
			if len(t.envs) >= c.maxEntries || !c.makeRoom(size, k) ||
				len(t.envs) > 0 && e.Seq <= t.envs[len(t.envs)-1].Seq {
				// Too long, or out of order (which commit order rules
				// out; dropping keeps the answers exact even so).
				c.drop(k, t)
				continue
			}
			kept := *e
			kept.Ciphertext = cloneBlob(e.Ciphertext)
			t.envs = append(t.envs, kept)
			t.bytes += size
			c.bytes += size
		}
		for _, r := range q.removed {
			t := c.tails[r.deviceKey]
			if t == nil {
				continue
			}
			t.epoch++
			if !t.valid {
				continue
			}
			for _, seq := range r.seqs {
				i, ok := sort.Find(len(t.envs), func(i int) int {
					switch s := t.envs[i].Seq; {
					case seq < s:
						return -1
					case seq > s:
						return 1
					}
					return 0
				})
				if ok {
					size := envBytes(&t.envs[i])
					t.envs = slices.Delete(t.envs, i, i+1)
					t.bytes -= size
					c.bytes -= size
				}
			}
		}
		for _, k := range q.dropped {
			if t := c.tails[k]; t != nil {
				c.drop(k, t)
			}
		}
	}
}
