package s3store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/internal/blob"
	"github.com/parleychat/parley/internal/s3"
)

// Sweep deletes the store's orphaned objects and returns how many it
// deleted. It lists every object under Options.Prefix and deletes one
// when (a) it was last modified before cutoff and (b) no row records it:
// there is no row for its blob, or the row's objects do not name it (a
// segment whose append lost its lease, or whose node died between the PUT
// and the row's update; an object a failed delete left). An object a row
// records is never deleted. Keys under the prefix that are not named as
// the store names objects are left alone, and logged.
//
// The row is read after the object was listed, and an append records its
// object only after writing it, so an object written by an append still in
// flight may be listed while no row names it yet. cutoff keeps those out:
// it must be earlier than now by well more than the longest an append
// takes from writing an object to recording it (putSegment bounds that to
// 5 minutes; the lease it runs under is Options.Lease), with room for the
// clock difference between this node and the bucket's service, which sets
// LastModified. parleyd passes now minus an hour.
//
// Several nodes may sweep at once: each deletes only orphans, and
// deleting a deleted object is not an error. A failed delete does not stop
// the sweep; the first failure is returned with the count of the others.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time) (deleted int, err error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.ops.Done()
	var (
		failed   int
		firstErr error
	)
	token := ""
	for {
		page, err := s.obj.List(ctx, s3.ListOptions{Prefix: s.opt.Prefix, ContinuationToken: token, MaxKeys: s.listKeys})
		if err != nil {
			return deleted, fmt.Errorf("s3store: sweep: %w", err)
		}
		n, f, err := s.sweepPage(ctx, page.Objects, cutoff)
		deleted += n
		failed += f
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			return deleted, fmt.Errorf("s3store: sweep: %w", ctx.Err())
		}
		if page.NextToken == "" {
			break
		}
		token = page.NextToken
	}
	if firstErr != nil {
		if failed > 1 {
			return deleted, fmt.Errorf("s3store: sweep: %d deletes failed, the first: %w", failed, firstErr)
		}
		return deleted, fmt.Errorf("s3store: sweep: %w", firstErr)
	}
	return deleted, nil
}

// sweepPage deletes the orphans among one page of a listing. It returns
// how many it deleted and how many deletes failed, with the first failure
// (or the error of reading the rows).
func (s *Store) sweepPage(ctx context.Context, objects []s3.Object, cutoff time.Time) (deleted, failed int, err error) {
	type candidate struct{ key, name string }
	var (
		cands []candidate
		ids   []string
		seen  = map[string]bool{}
	)
	for _, o := range objects {
		if !o.LastModified.Before(cutoff) {
			continue
		}
		name, ok := strings.CutPrefix(o.Key, s.opt.Prefix)
		id, ok2 := parseObjectName(name)
		if !ok || !ok2 {
			s.log.Warn("s3store: sweep: leaving alone an object not named as a blob's segment", "key", o.Key)
			continue
		}
		cands = append(cands, candidate{key: o.Key, name: name})
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(cands) == 0 {
		return 0, 0, nil
	}
	// What the rows of these blobs record now, read after the listing.
	rows, err := s.pool.Query(ctx, `SELECT objects FROM blobs WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the rows of listed objects: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return 0, 0, fmt.Errorf("reading the rows of listed objects: %w", err)
	}
	recorded := map[string]bool{}
	for _, ns := range names {
		for _, n := range ns {
			recorded[n] = true
		}
	}
	for _, c := range cands {
		if recorded[c.name] {
			continue
		}
		if derr := s.obj.Delete(ctx, c.key); derr != nil {
			if ctx.Err() != nil {
				return deleted, failed, ctx.Err()
			}
			failed++
			if err == nil {
				err = derr
			}
			continue
		}
		deleted++
	}
	return deleted, failed, err
}

// parseObjectName returns the blob id of an object name that objectName
// could have made (<id>/<start as 16 hex digits>.<tag>), and false for
// any other name.
func parseObjectName(name string) (id string, ok bool) {
	id, rest, ok := strings.Cut(name, "/")
	if !ok || !blob.ValidID(id) {
		return "", false
	}
	hex, tag, ok := strings.Cut(rest, ".")
	if !ok || len(hex) != 16 || len(tag) != tagLen || strings.ContainsFunc(tag, notBase64URL) {
		return "", false
	}
	start, err := strconv.ParseInt(hex, 16, 64)
	if err != nil || start < 0 {
		return "", false
	}
	// The name must be exactly what objectName makes of its parts.
	if objectName(id, start, tag) != name {
		return "", false
	}
	return id, true
}

// notBase64URL reports whether r is outside the alphabet of lease tokens
// (blob.NewID: unpadded base64url).
func notBase64URL(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
}
