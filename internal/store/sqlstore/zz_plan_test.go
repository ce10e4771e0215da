package sqlstore

import (
	"fmt"
	"testing"
	"time"
	"database/sql"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/testenv"
)

func TestZZPlan(t *testing.T) {
	s := openForTest(t, Config{Driver: DriverPostgres, DSN: testenv.PostgresDSN(t)})
	var keys []store.DeviceKey
	for i := range 500 {
		keys = append(keys, store.DeviceKey{DeviceID: fmt.Sprintf("dev-%d", 300000+i)})
	}
	q, args := deviceLoadQuery(s.dialect, "bench", keys)
	s.writer.SetMaxOpenConns(1)
	for i := range 20 {
		if i == 10 {
			if _, err := s.writer.Exec(`INSERT INTO devices SELECT 'bench', 'dev-'||g, '', 1, repeat('x', 500), repeat('y', 400), 'e', 't', 0, 0 FROM generate_series(1,200000) g`); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		s.inTx(t.Context(), func(tx *sql.Tx) error {
			rows, err := tx.Query(q, args...)
			if err != nil {
				t.Fatal(err)
			}
			rows.Close()
			return nil
		})
		t.Log(i, time.Since(start))
	}
	text, err := planOf(t, s, postgresPlan, q, args)
	t.Log(text[:min(len(text), 1500)], err)
}
