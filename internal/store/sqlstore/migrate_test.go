package sqlstore

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadMigrations(t *testing.T) {
	for _, d := range dialectNames {
		migrations, err := loadMigrations(migrationFiles, d)
		if err != nil {
			t.Fatalf("embedded migrations for %s: %v", d, err)
		}
		if len(migrations) == 0 || migrations[0].version != 1 {
			t.Fatalf("embedded migrations for %s start at %v, want version 1", d, migrations)
		}
	}

	file := func(name string) *fstest.MapFile { return &fstest.MapFile{Data: []byte("-- " + name)} }
	good := fstest.MapFS{
		"migrations/0001_init.sqlite.sql":   file("1 sqlite"),
		"migrations/0001_init.postgres.sql": file("1 postgres"),
		"migrations/0002_more.sql":          file("2 shared"),
	}
	migrations, err := loadMigrations(good, DriverPostgres)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	if len(migrations) != 2 || migrations[0].sql != "-- 1 postgres" || migrations[1].sql != "-- 2 shared" {
		t.Errorf("loadMigrations = %+v, want the postgres file then the shared one", migrations)
	}

	for name, tc := range map[string]struct {
		files fstest.MapFS
		want  string
	}{
		"gap":              {fstest.MapFS{"migrations/0001_a.sql": file("1"), "migrations/0003_c.sql": file("3")}, "missing"},
		"duplicate":        {fstest.MapFS{"migrations/0001_a.sql": file("1"), "migrations/0001_b.sql": file("1")}, "share version"},
		"one dialect only": {fstest.MapFS{"migrations/0001_a.sqlite.sql": file("1")}, "no postgres file"},
		"shared and split": {fstest.MapFS{
			"migrations/0001_a.sql": file("1"), "migrations/0001_a.sqlite.sql": file("1"), "migrations/0001_a.postgres.sql": file("1"),
		}, "both"},
		"unknown dialect": {fstest.MapFS{"migrations/0001_a.mysql.sql": file("1")}, "unknown dialect"},
		"bad name":        {fstest.MapFS{"migrations/init.sql": file("1")}, "want NNNN_title"},
	} {
		_, err := loadMigrations(tc.files, DriverSQLite)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, tc.want)
		}
	}
}
