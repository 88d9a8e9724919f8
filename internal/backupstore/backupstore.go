// Package backupstore keeps each account's sealed PIN-backup blob (the
// output of internal/pinbackup.SealBlob) for parleyd: one file per account
// in one folder. A blob is opaque here: it opens only with the backup key,
// which only the holder of the PIN gets back from the realms.
//
// Files are named <handle>.backup (handles are a-z, 0-9 and _), written to
// a temporary file, synced and renamed into place, so a reader sees the old
// blob or the new one, never a mix. A deployment of several parleyd nodes
// points every node at one shared folder (docs/OPERATIONS.md).
package backupstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/parleychat/parley/internal/identity"
)

// Errors.
var (
	ErrNotFound = errors.New("backupstore: no backup is stored for this account")
	ErrHandle   = errors.New("backupstore: invalid handle")
)

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

func (s *Store) path(handle string) (string, error) {
	if !identity.ValidHandle(handle) {
		return "", fmt.Errorf("%w: %q", ErrHandle, handle)
	}
	return filepath.Join(s.dir, handle+suffix), nil
}

// Put stores blob as handle's backup, replacing the previous one, and
// returns once it is durable.
func (s *Store) Put(handle string, blob []byte) error {
	p, err := s.path(handle)
	if err != nil {
		return err
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

// Get returns handle's backup and when it was stored.
func (s *Store) Get(handle string) ([]byte, time.Time, error) {
	p, err := s.path(handle)
	if err != nil {
		return nil, time.Time{}, err
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
func (s *Store) Delete(handle string) error {
	p, err := s.path(handle)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backupstore: %w", err)
	}
	return syncDir(s.dir)
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
