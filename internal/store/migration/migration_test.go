package migration

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_second.sql": {Data: []byte("two")},
		"m/0001_first.sql":  {Data: []byte("one")},
		"m/README":          {Data: []byte("not matched")},
	}
	ms, err := Load(fsys, "m/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0] != (Migration{1, "0001_first.sql", "one"}) || ms[1] != (Migration{2, "0002_second.sql", "two"}) {
		t.Fatalf("Load = %+v", ms)
	}
	if ms, err := Load(fstest.MapFS{}, "m/*.sql"); err != nil || len(ms) != 0 {
		t.Fatalf("empty: %v, %v", ms, err)
	}
	for name, files := range map[string][]string{
		"not named NNNN_name.sql": {"m/first.sql", "m/0_x.sql", "m/-1_x.sql", "m/0001.sql"},
		"out of sequence":         {"m/0001_a.sql m/0003_c.sql", "m/0002_b.sql", "m/0001_a.sql m/0001_b.sql"},
	} {
		for _, set := range files {
			fsys := fstest.MapFS{}
			for _, f := range strings.Fields(set) {
				fsys[f] = &fstest.MapFile{Data: []byte("x")}
			}
			if _, err := Load(fsys, "m/*.sql"); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: %v, want an error saying %q", set, err, name)
			}
		}
	}
}

// The stores' own migrations load: numbered without gaps.
func TestStoresMigrations(t *testing.T) {
	for _, dir := range []string{"../sqlitestore/migrations", "../pgstore/migrations"} {
		ms, err := Load(os.DirFS(dir), "*.sql")
		if err != nil || len(ms) == 0 {
			t.Errorf("%s: %d migrations, %v", dir, len(ms), err)
		}
	}
}
