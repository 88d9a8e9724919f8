package realm

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/parleychat/parley/internal/pinbackup"
)

// Store errors.
var (
	ErrNotRegistered = errors.New("realm: no PIN backup is registered for this account")
	ErrDestroyed     = errors.New("realm: the PIN backup was destroyed after too many wrong PINs")
	ErrVersion       = errors.New("realm: the registration changed since the recovery began")
	ErrWrongTag      = errors.New("realm: wrong unlock tag")
)

// db is the realm's SQLite database: one row per registered account, and a
// tombstone per account whose backup was destroyed. It runs with
// secure_delete on and a rollback journal (not WAL), so that deleted
// registrations are overwritten in the file rather than left in free pages
// or a write-ahead log.
type db struct {
	sql *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS registrations (
	handle            TEXT PRIMARY KEY,
	version           BLOB NOT NULL,
	params            TEXT NOT NULL,
	threshold         INTEGER NOT NULL,
	key_share         BLOB NOT NULL,
	registration_key  BLOB NOT NULL,
	public_share_sig  BLOB NOT NULL,
	unlock_tag        BLOB NOT NULL,
	secret_share      BLOB NOT NULL,
	sealed_secret     BLOB NOT NULL,
	secret_commitment BLOB NOT NULL,
	allowed_guesses   INTEGER NOT NULL,
	attempted_guesses INTEGER NOT NULL,
	updated_ms        INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS tombstones (
	handle       TEXT PRIMARY KEY,
	destroyed_ms INTEGER NOT NULL
) STRICT;
`

// openDB opens (creating) the database file with mode 0600.
func openDB(ctx context.Context, path string) (*db, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("realm: %w", err)
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, fmt.Errorf("realm: database path %q contains '?' or '#'", abs)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("realm: %w", err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(DELETE)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(1)")
	q.Set("_txlock", "immediate")
	s, err := sql.Open("sqlite", abs+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("realm: %w", err)
	}
	// One connection: every request is a short transaction, and guess
	// counting must be serialised anyway.
	s.SetMaxOpenConns(1)
	s.SetMaxIdleConns(1)
	s.SetConnMaxLifetime(0)
	d := &db{sql: s}
	var secure int
	if err := s.QueryRowContext(ctx, "PRAGMA secure_delete").Scan(&secure); err != nil || secure != 1 {
		s.Close()
		return nil, fmt.Errorf("realm: secure_delete is not on (%d): %v", secure, err)
	}
	if _, err := s.ExecContext(ctx, schema); err != nil {
		s.Close()
		return nil, fmt.Errorf("realm: creating schema: %w", err)
	}
	return d, nil
}

func (d *db) close() error { return d.sql.Close() }

// record is an account's row.
type record struct {
	reg       pinbackup.Registration
	attempted int
}

// register stores reg for handle, replacing any registration or tombstone,
// with no guesses attempted.
func (d *db) register(ctx context.Context, handle string, reg *pinbackup.Registration, now time.Time) error {
	params, err := json.Marshal(reg.Params)
	if err != nil {
		return fmt.Errorf("realm: %w", err)
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tombstones WHERE handle = ?`, handle); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM registrations WHERE handle = ?`, handle); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO registrations (handle, version, params, threshold, key_share,
			registration_key, public_share_sig, unlock_tag, secret_share, sealed_secret, secret_commitment,
			allowed_guesses, attempted_guesses, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`,
			handle, reg.Version, string(params), reg.Threshold, reg.KeyShare, reg.RegistrationKey,
			reg.PublicShareSignature, reg.UnlockTag, reg.SecretShare, reg.SealedSecret, reg.SecretCommitment,
			reg.AllowedGuesses, now.UnixMilli())
		return err
	})
}

// load reads handle's row inside tx: ErrDestroyed for a tombstone,
// ErrNotRegistered for nothing.
func load(ctx context.Context, tx *sql.Tx, handle string) (*record, error) {
	var r record
	var params string
	err := tx.QueryRowContext(ctx, `SELECT version, params, threshold, key_share, registration_key,
		public_share_sig, unlock_tag, secret_share, sealed_secret, secret_commitment, allowed_guesses,
		attempted_guesses FROM registrations WHERE handle = ?`, handle).Scan(
		&r.reg.Version, &params, &r.reg.Threshold, &r.reg.KeyShare, &r.reg.RegistrationKey,
		&r.reg.PublicShareSignature, &r.reg.UnlockTag, &r.reg.SecretShare, &r.reg.SealedSecret,
		&r.reg.SecretCommitment, &r.reg.AllowedGuesses, &r.attempted)
	if errors.Is(err, sql.ErrNoRows) {
		var ms int64
		err := tx.QueryRowContext(ctx, `SELECT destroyed_ms FROM tombstones WHERE handle = ?`, handle).Scan(&ms)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotRegistered
		}
		if err != nil {
			return nil, err
		}
		return nil, ErrDestroyed
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(params), &r.reg.Params); err != nil {
		return nil, fmt.Errorf("realm: stored params: %w", err)
	}
	return &r, nil
}

// destroy deletes handle's registration and leaves a tombstone.
func destroy(ctx context.Context, tx *sql.Tx, handle string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM registrations WHERE handle = ?`, handle); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO tombstones (handle, destroyed_ms) VALUES (?, ?)`, handle, now.UnixMilli())
	return err
}

// status returns handle's record; a registration whose guesses are used
// up is destroyed first (Juicebox recover1).
func (d *db) status(ctx context.Context, handle string, now time.Time) (*record, error) {
	var out *record
	err := d.tx(ctx, func(tx *sql.Tx) error {
		r, err := load(ctx, tx, handle)
		if err != nil {
			return err
		}
		if r.attempted >= r.reg.AllowedGuesses {
			if err := destroy(ctx, tx, handle, now); err != nil {
				return err
			}
			return errCommit{ErrDestroyed}
		}
		out = r
		return nil
	})
	return out, err
}

// guess counts one recovery attempt and returns the record with the count
// included, committed before the caller evaluates anything.
func (d *db) guess(ctx context.Context, handle string, version []byte, now time.Time) (*record, error) {
	var out *record
	err := d.tx(ctx, func(tx *sql.Tx) error {
		r, err := load(ctx, tx, handle)
		if err != nil {
			return err
		}
		if r.attempted >= r.reg.AllowedGuesses {
			if err := destroy(ctx, tx, handle, now); err != nil {
				return err
			}
			return errCommit{ErrDestroyed}
		}
		if string(version) != string(r.reg.Version) {
			return ErrVersion
		}
		r.attempted++
		if _, err := tx.ExecContext(ctx, `UPDATE registrations SET attempted_guesses = ?, updated_ms = ? WHERE handle = ?`,
			r.attempted, now.UnixMilli(), handle); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// unlock checks a tag. Correct: the guess count goes back to zero and the
// record is returned. Wrong: the count stays; if no guesses are left, the
// registration is destroyed (ErrDestroyed); otherwise ErrWrongTag with the
// guesses left.
func (d *db) unlock(ctx context.Context, handle string, version, tag []byte, now time.Time) (*record, int, error) {
	var out *record
	left := 0
	err := d.tx(ctx, func(tx *sql.Tx) error {
		r, err := load(ctx, tx, handle)
		if err != nil {
			return err
		}
		if string(version) != string(r.reg.Version) {
			return ErrVersion
		}
		if !r.reg.TagMatches(tag) {
			left = r.reg.AllowedGuesses - r.attempted
			if left <= 0 {
				if err := destroy(ctx, tx, handle, now); err != nil {
					return err
				}
				return errCommit{ErrDestroyed}
			}
			return ErrWrongTag
		}
		if _, err := tx.ExecContext(ctx, `UPDATE registrations SET attempted_guesses = 0, updated_ms = ? WHERE handle = ?`,
			now.UnixMilli(), handle); err != nil {
			return err
		}
		r.attempted = 0
		out = r
		return nil
	})
	return out, left, err
}

// remove deletes handle's registration and tombstone (the user's delete).
func (d *db) remove(ctx context.Context, handle string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM registrations WHERE handle = ?`, handle); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM tombstones WHERE handle = ?`, handle)
		return err
	})
}

// errCommit carries an error that must not roll the transaction back.
type errCommit struct{ err error }

func (e errCommit) Error() string { return e.err.Error() }

// tx runs f in an IMMEDIATE transaction; it commits when f returns nil or
// an errCommit (whose error it then returns).
func (d *db) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("realm: begin: %w", err)
	}
	ferr := f(tx)
	var ec errCommit
	if ferr != nil && !errors.As(ferr, &ec) {
		tx.Rollback()
		return ferr
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("realm: commit: %w", err)
	}
	if ferr != nil {
		return ec.err
	}
	return nil
}
