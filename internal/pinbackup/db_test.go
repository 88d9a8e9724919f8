package pinbackup_test

import (
	"database/sql"
	"testing"

	_ "modernc.org/sqlite"
)

// readRows returns every row of a table of a realm's SQLite file, column
// name to value, read directly from the file as an attacker holding it
// would.
func readRows(t *testing.T, path, table string) []map[string]any {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// tables lists the tables of a SQLite file.
func tables(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, r := range readRows(t, path, "sqlite_master WHERE type = 'table'") {
		out = append(out, r["name"].(string))
	}
	return out
}

// readRow returns the registrations row of handle.
func readRow(t *testing.T, path, handle string) map[string]any {
	t.Helper()
	for _, r := range readRows(t, path, "registrations") {
		if r["handle"] == handle {
			return r
		}
	}
	t.Fatalf("%s has no registration for %s", path, handle)
	return nil
}
