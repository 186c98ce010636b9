package scenario

// Fault plans of the power-loss storage layer (harness/powerfs): the
// trial's backup target and tablespace directories are on a file system
// that keeps only what was made durable; after the run, or when the power
// is cut, only the durable state is judged. See harness/fault/disk.go.
const (
	// PlanPowerLoss cuts the power at a random time over a calibrated
	// clean run, weighted towards the finishing phase.
	PlanPowerLoss = "powerloss"
	// PlanPowerLossFsync cuts the power before or after a sampled fsync of
	// the finishing phase (counted over the whole process tree).
	PlanPowerLossFsync = "powerloss-at-nth-fsync"
	// PlanPowerLossFsyncDir does so at a directory fsync.
	PlanPowerLossFsyncDir = "powerloss-at-nth-fsyncdir"
	// PlanPowerLossRename does so at a rename.
	PlanPowerLossRename = "powerloss-at-nth-rename"
	// PlanPowerLossWrite does so at a write.
	PlanPowerLossWrite = "powerloss-at-nth-write"
	// PlanEIOOpenSync fails with EIO one open for writing of the final
	// sync walk (its fsync pass).
	PlanEIOOpenSync = "eio-on-open-during-sync"
	// PlanEIOFsync fails with EIO one fsync of the finishing phase.
	PlanEIOFsync = "eio-on-fsync"
	// PlanEIOFsyncDir fails with EIO one directory fsync of the finishing
	// phase.
	PlanEIOFsyncDir = "eio-on-fsyncdir"
	// PlanEIORename fails with EIO one rename of the finishing phase.
	PlanEIORename = "eio-on-rename"
	// PlanENOSPC makes writes fail with ENOSPC from a sampled byte count on.
	PlanENOSPC = "enospc-at-bytes"
	// PlanStatusFileIOError fails operations on the status file itself,
	// never on the backup: a write of a version (EIO or ENOSPC), the fsync
	// of its temporary file, its rename into place or the fsync of its
	// directory, once or from a sampled version on.
	PlanStatusFileIOError = "status-file-io-error"
)

// DiskPlans lists the fault plans that run on the power-loss storage
// layer. They need root and /dev/fuse, and sync on (NoSyncPlan: some not).
func DiskPlans() []string {
	return []string{PlanPowerLoss, PlanPowerLossFsync, PlanPowerLossFsyncDir, PlanPowerLossRename,
		PlanPowerLossWrite, PlanEIOOpenSync, PlanEIOFsync, PlanEIOFsyncDir, PlanEIORename, PlanENOSPC,
		PlanStatusFileIOError}
}

// noSyncPlans are the disk plans that also go with sync off: power cuts
// at renames and writes or at a random time. With --no-sync only the first
// version of the status file is made durable (it replaces an earlier
// run's), so a power cut checks that nothing brings that one back.
var noSyncPlans = []string{PlanPowerLoss, PlanPowerLossRename, PlanPowerLossWrite}

// NoSyncPlan says whether a disk plan goes with sync off.
func NoSyncPlan(name string) bool {
	return contains(noSyncPlans, name)
}

// IsDiskPlan says whether a plan runs on the power-loss storage layer.
func IsDiskPlan(name string) bool {
	return contains(DiskPlans(), name)
}
