// Package wrapper runs a stock (unpatched) pg_basebackup, PostgreSQL 13
// to 18, and writes the backup status file that the patched one writes
// with --status-file, in the same format, so that the same reader
// (package status, pgbb-status) judges it.
//
// The wrapper is the writer: the status file's PID is the wrapper's, and
// its BOOT ID, PID NAMESPACE and START TICKS are the wrapper's. It writes
// "in progress" before pg_basebackup starts, rewrites it while the run
// lasts, and writes "completed" only after pg_basebackup exited 0, its
// standard error showed no error during its final sync, and the
// wrapper's own sync pass over every recorded directory succeeded
// (SyncPass). Every version goes through FILE.PID.tmp, is synced, renamed
// into place and its directory synced (Writer). A status file that
// cannot be written only warns: it never fails or removes the backup.
//
// pg_basebackup runs in the wrapper's process group, and the command
// makes the wrapper the leader of that group, so that pg_basebackup's
// WAL streaming child carries the recorded PID as its process group: the
// reader refuses to call the run dead, or remove what it left, while
// such a child is alive. The wrapper names itself pg_basebackup (Linux
// comm), the name the reader's liveness check requires of the writer.
package wrapper
