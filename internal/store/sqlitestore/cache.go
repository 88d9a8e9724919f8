package sqlitestore

import (
	"sync"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// readCache keeps answers of the two reads every request makes:
// TokenDevice (every authenticated request) and DeviceList (twice per
// send, for the recipient's and the sender's devices, and once per
// delivery connection). On this pure-Go SQLite each costs tens of
// microseconds of CPU, a fifth of a send's.
//
// Every change this process makes invalidates the entries it touches
// once it is committed, so the store's answers stay exact. parleyd is the
// database's only writer (the queue tails and counts assume it too, see
// tail.go and counts.go; docs/OPERATIONS.md tells operators to stop it
// before editing the file), so a device list stays cached until this
// process changes it or it makes room for another (listEntries). A token
// answers for tokenTTL at most, as well as until the token's own expiry.
// An entry is stored only if no invalidation happened while it was read
// from the database (gen), so a read that raced with a change cannot
// reinstate the old value.
type readCache struct {
	mu     sync.Mutex
	gen    uint64 // bumped by every invalidation
	lists  map[string]cachedList
	tokens map[string]cachedToken
	now    func() time.Time
}

// Bounds of the cache: how many entries of each kind it keeps (when full,
// an arbitrary one makes room), and how long a token answers. A device
// list of a few devices takes about 1 KiB: listEntries bound the lists
// near 64 MiB.
const (
	listEntries  = 1 << 16
	tokenEntries = 4096
	tokenTTL     = time.Second
)

type cachedList struct {
	l store.DeviceList
}

type cachedToken struct {
	handle  string
	device  uint32
	expires time.Time // the token's own expiry
	fetched time.Time
}

func newReadCache() *readCache {
	return &readCache{lists: make(map[string]cachedList), tokens: make(map[string]cachedToken), now: time.Now}
}

// list returns the cached device list of stored handle h, and the
// generation to pass to putList after a miss.
func (c *readCache) list(h string) (store.DeviceList, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lists[h]; ok {
		return copyList(e.l), true, c.gen
	}
	return store.DeviceList{}, false, c.gen
}

// putList caches l, read from the database since generation gen.
func (c *readCache) putList(h string, l store.DeviceList, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.lists[h]; !ok && len(c.lists) >= listEntries {
		for k := range c.lists {
			delete(c.lists, k)
			break
		}
	}
	c.lists[h] = cachedList{copyList(l)}
}

// token returns the cached device of a live token hash.
func (c *readCache) token(hash []byte) (string, uint32, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.tokens[string(hash)]
	now := c.now()
	if ok && now.Sub(e.fetched) < tokenTTL && now.Before(e.expires) {
		return e.handle, e.device, true, c.gen
	}
	return "", 0, false, c.gen
}

// putToken caches a token's device, read since generation gen.
func (c *readCache) putToken(hash []byte, h string, device uint32, expires time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if _, ok := c.tokens[string(hash)]; !ok && len(c.tokens) >= tokenEntries {
		for k := range c.tokens {
			delete(c.tokens, k)
			break
		}
	}
	c.tokens[string(hash)] = cachedToken{h, device, expires, c.now()}
}

// devicesChanged drops what a change of h's device list makes stale: its
// list, and every token (a removed device's tokens are deleted with it).
func (c *readCache) devicesChanged(h string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.lists, h)
	clear(c.tokens)
}

// tokenChanged drops a token stored again (possibly for another device).
func (c *readCache) tokenChanged(hash []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.tokens, string(hash))
}

// tokensExpired drops every token: Expire deleted those expired at a time
// of its caller's choosing.
func (c *readCache) tokensExpired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.tokens)
}

// copyList copies a device list, so that callers may change what they get.
func copyList(l store.DeviceList) store.DeviceList {
	out := store.DeviceList{Signed: append([]byte(nil), l.Signed...), Version: l.Version}
	if l.Devices != nil {
		out.Devices = make([]store.Device, len(l.Devices))
		for i, d := range l.Devices {
			d.SigningKey = append([]byte(nil), d.SigningKey...)
			out.Devices[i] = d
		}
	}
	return out
}
