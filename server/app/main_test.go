package app

import (
	"os"
	"testing"

	"idleguard/server/internal/pgtest"
)

// pg is this package's PostgreSQL server, started by the first test that
// asks for a database and stopped by TestMain; tests that need none never
// start it.
var pg = pgtest.New()

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
