package scenario

// PlanStop stops pg_basebackup with SIGSTOP at a random time after the
// server started the backup and continues it with SIGCONT a few seconds
// later. While it is stopped, the status reader must say
// "stalled", never dead or completed, and --remove-if-dead must refuse;
// after SIGCONT the run must complete. See harness/fault/stop.go.
const PlanStop = "stop"
