package sqlitestore

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/store"
)

// TestReadCacheOutsideChange changes the database behind the store's back
// (as another process writing the file would, which parleyd rules out): a
// cached token answers for tokenTTL at most; a cached device list until
// the store itself changes it.
func TestReadCacheOutsideChange(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{})
	var mu sync.Mutex
	now := time.Now()
	db.cache.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	mustAccount(t, db, "bob", 1, 2)
	tok := []byte("token of bob/2")
	if err := db.PutToken(ctx, tok, "bob", 2, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if l, err := db.DeviceList(ctx, "bob"); err != nil || len(l.Devices) != 2 {
		t.Fatalf("DeviceList: %d devices, %v", len(l.Devices), err)
	}
	if _, _, err := db.TokenDevice(ctx, tok); err != nil {
		t.Fatal(err)
	}
	// Device 2 goes, with its token, outside the store's methods.
	if _, err := db.w.ExecContext(ctx, `DELETE FROM devices WHERE handle = 'bob' AND id = 2`); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.DeviceList(ctx, "bob"); len(l.Devices) != 2 {
		t.Fatalf("within the TTL: %d devices, want the cached 2", len(l.Devices))
	}
	advance(tokenTTL)
	if _, _, err := db.TokenDevice(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TokenDevice of the removed device after the TTL: %v", err)
	}
	advance(time.Hour)
	if l, _ := db.DeviceList(ctx, "bob"); len(l.Devices) != 2 {
		t.Fatalf("an hour later: %d devices, want the cached 2 (only the store's own changes invalidate lists)", len(l.Devices))
	}
	// The store's own change of the list is seen at once.
	cur, err := db.DeviceList(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	next := store.DeviceList{Signed: []byte("v2"), Version: cur.Version + 1, Devices: cur.Devices[:1]}
	if _, err := db.ReplaceDeviceList(ctx, "bob", next); err != nil {
		t.Fatal(err)
	}
	if l, err := db.DeviceList(ctx, "bob"); err != nil || len(l.Devices) != 1 || l.Version != next.Version {
		t.Fatalf("after ReplaceDeviceList: version %d, %d devices, %v", l.Version, len(l.Devices), err)
	}
}

// TestReadCacheInvalidated checks that the store's own changes show at
// once, and that a read that raced with a change is not cached.
func TestReadCacheInvalidated(t *testing.T) {
	ctx := testCtx(t)
	db := openTest(t, filepath.Join(t.TempDir(), "parley.db"), Options{})
	mustAccount(t, db, "bob", 1, 2)
	tok := []byte("token of bob/2")
	if err := db.PutToken(ctx, tok, "bob", 2, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	old, err := db.DeviceList(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.TokenDevice(ctx, tok); err != nil {
		t.Fatal(err)
	}
	// A read began before the change below...
	_, _, gen := db.cache.list("bob")
	newer := store.DeviceList{Signed: []byte("v2"), Version: 2, Devices: old.Devices[:1]}
	if _, err := db.ReplaceDeviceList(ctx, "bob", newer); err != nil {
		t.Fatal(err)
	}
	// ...and ends after it: its old answer is not cached.
	db.cache.putList("bob", old, gen)
	if l, err := db.DeviceList(ctx, "bob"); err != nil || l.Version != 2 || len(l.Devices) != 1 {
		t.Fatalf("after ReplaceDeviceList: version %d, %d devices, %v", l.Version, len(l.Devices), err)
	}
	if _, _, err := db.TokenDevice(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token of the removed device: %v", err)
	}
	// The cache hands out copies.
	l, _ := db.DeviceList(ctx, "bob")
	l.Signed[0] = 'X'
	l.Devices[0].SigningKey[0] = 'X'
	if again, _ := db.DeviceList(ctx, "bob"); again.Signed[0] == 'X' || again.Devices[0].SigningKey[0] == 'X' {
		t.Fatal("a caller's change reached the cache")
	}
	// Expire at a time of the caller's choosing drops the tokens it
	// deletes, even if the clock says they are live.
	tok1 := []byte("token of bob/1")
	if err := db.PutToken(ctx, tok1, "bob", 1, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.TokenDevice(ctx, tok1); err != nil {
		t.Fatal(err)
	}
	if err := db.Expire(ctx, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.TokenDevice(ctx, tok1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token deleted by Expire: %v", err)
	}
}
