//go:build race

package sqlite

// raceEnabled: the race detector makes SQLite (C translated to Go) some 80
// times slower, so tests that need a backlog of rows make a smaller one.
const raceEnabled = true
