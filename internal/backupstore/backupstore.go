// Package backupstore keeps each account's sealed PIN-backup blob (the
// output of internal/pinbackup.SealBlob) for parleyd. A blob is opaque
// here: it opens only with the backup key, which only the holder of the
// PIN gets back from the realms.
//
// Backups is the contract; backupstore/backuptest is the conformance
// suite every implementation passes unchanged. Store, in this package,
// keeps one file per account in one folder: the store of a single node,
// or of a cluster whose nodes share that folder. Package
// backupstore/pgbackups keeps the blobs in the PostgreSQL database a
// cluster already shares.
//
// Store's files are named <handle>.backup (handles are a-z, 0-9 and _),
// written to a temporary file, synced and renamed into place, so a reader
// sees the old blob or the new one, never a mix.
package backupstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/identity"
)

// Errors.
var (
	ErrNotFound = errors.New("backupstore: no backup is stored for this account")
	ErrHandle   = errors.New("backupstore: invalid handle")
)

// Backups keeps one sealed blob per account. Implementations are safe for
// concurrent use (the last Put wins), and refuse a handle that is not a
// valid account handle (identity.ValidHandle) with an error wrapping
// ErrHandle.
type Backups interface {
	// Put stores blob as handle's backup, replacing the previous one,
	// and returns once it is durable.
	Put(ctx context.Context, handle string, blob []byte) error
	// Get returns handle's backup and when it was last written (UTC), or
	// ErrNotFound.
	Get(ctx context.Context, handle string) (blob []byte, updated time.Time, err error)
	// Delete removes handle's backup; a missing one is not an error.
	Delete(ctx context.Context, handle string) error
}

var _ Backups = (*Store)(nil)

// CheckHandle returns nil for a valid account handle, else an error
// wrapping ErrHandle. Every implementation checks handles with it.
func CheckHandle(handle string) error {
	if !identity.ValidHandle(handle) {
		return fmt.Errorf("%w: %q", ErrHandle, handle)
	}
	return nil
}

const suffix = ".backup"

// Store is a folder of backup blobs. It is safe for concurrent use: the
// last Put wins.
type Store struct {
	dir string
}

// Open returns the store in dir, creating the folder with mode 0700.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("backupstore: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store's folder.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(handle string) (string, error) {
	if err := CheckHandle(handle); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, handle+suffix), nil
}

// Put stores blob as handle's backup, replacing the previous one, and
// returns once it is durable.
func (s *Store) Put(ctx context.Context, handle string, blob []byte) error {
	p, err := s.path(handle)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	f, err := os.CreateTemp(s.dir, "."+handle+"-*.tmp")
	if err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	if _, err := f.Write(blob); err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	ok = true
	return syncDir(s.dir)
}

// Get returns handle's backup and when it was stored (the file's
// modification time).
func (s *Store) Get(ctx context.Context, handle string) ([]byte, time.Time, error) {
	p, err := s.path(handle)
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("backupstore: %w", err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("backupstore: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("backupstore: %w", err)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, time.Time{}, fmt.Errorf("backupstore: %w", err)
	}
	return b, st.ModTime().UTC(), nil
}

// Delete removes handle's backup; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, handle string) error {
	p, err := s.path(handle)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backupstore: %w", err)
	}
	return syncDir(s.dir)
}

// Handles lists the accounts that have a backup in the folder, sorted.
// Files whose names are not <valid handle>.backup are not listed.
func (s *Store) Handles() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("backupstore: %w", err)
	}
	var hs []string
	for _, e := range ents {
		h, ok := strings.CutSuffix(e.Name(), suffix)
		if ok && e.Type().IsRegular() && identity.ValidHandle(h) {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	return hs, nil
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backupstore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backupstore: syncing the folder: %w", err)
	}
	return nil
}
