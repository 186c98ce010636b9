// Package powerfs is a FUSE file system that forgets what was never made
// durable: the crash harness mounts it over pg_basebackup's target, cuts
// the power at a chosen operation, and hands the oracle only what a real
// disk would still hold.
//
// # The model
//
// Every inode has a volatile state (what programs read and write: the
// kernel page cache above a real disk) and a durable state (what survives
// a power loss). Both live in memory. The durable state changes only
// through fsync, as POSIX and ext4 promise and no more:
//
//   - fsync (or fdatasync) of a file makes its data and size durable, not
//     its directory entry: a file created, written and fsynced in a
//     directory that was never fsynced is gone after a power loss;
//   - fsync of a directory makes its entries durable (names to inodes):
//     creates, unlinks, links, and renames into or out of it;
//   - a rename is durable in a directory only once that directory was
//     fsynced; before, the old name comes back (and a rename between two
//     directories may leave the file under both names, or neither);
//   - attributes (mode, owner) become durable with the inode's data; an
//     inode first reached by a durable entry but never fsynced is empty.
//
// The mount's root directory and directories made with [FS.MkdirAll]
// before the trial are durable from the start.
//
// # Faults
//
// [Rule] fails chosen operations with an errno (EIO on fsync, on directory
// fsync, on the open of a path during the sync walk, on rename...);
// [FS.SetSpaceLimit] makes writes fail with ENOSPC after a number of
// bytes. A failed fsync behaves as Linux did in the fsyncgate reports:
// the dirty data is dropped (marked clean), so a later fsync that succeeds
// does not make it durable. A failed directory fsync likewise drops the
// directory's pending entry changes.
//
// # Power loss
//
// [FS.PowerLoss] freezes the file system (every later operation fails
// with EIO, so a process tree that is being killed cannot write more) and
// returns the durable state as a [Snapshot], which [Snapshot.Materialise]
// writes to a real directory. A [CrashPoint] does the same at the Nth
// operation of a kind, before or after applying it, and [FS.Crashed]
// tells the caller when. [FS.TrackTorn] records the torn states of a
// named file: every prefix of each write to it, and the temporary file
// without its rename, each as a durable snapshot plus that file.
//
// Data never reaches the kernel as a passthrough file descriptor, and the
// kernel's writeback cache is off: every write goes through this layer.
package powerfs
