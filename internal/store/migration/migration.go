// Package migration reads a store's schema changes: SQL files named
// NNNN_what.sql, numbered 1, 2, 3, ... without gaps. A migration, once
// released, is never edited: a change is a new file with the next number.
// Each store applies them its own way (sqlitestore, pgstore).
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string // the file's name
	SQL     string
}

// Load returns the migrations whose files match pattern in fsys (for
// example "migrations/*.sql" in an embed.FS), in version order.
func Load(fsys fs.FS, pattern string) ([]Migration, error) {
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(base, ".sql") {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %q out of sequence, want version %d", m.Name, i+1)
		}
	}
	return ms, nil
}
