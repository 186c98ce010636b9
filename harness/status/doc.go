// Package status reads the backup status file that the patched
// pg_basebackup writes, and decides whether a backup can be used, is still
// being written, or must be removed and taken again.
//
// # The file
//
// pg_basebackup writes a status file only when asked, with
// --status-file=FILE, and refuses a FILE inside any directory the backup
// writes (the target, --waldir, tablespace directories): the file always
// lives outside the backup, and its DIRECTORY lines name the directories.
// Every version of the file is written to a temporary file next to it,
// FILE.PID.tmp ([TempPath]; PID is the writer's, the one its PID line
// records), and renamed into place, so a reader sees a whole old or a
// whole new version; earlier writers used FILE.tmp ([LegacyTempPath])
// whatever their pid. A temporary file's presence alone means nothing.
// The file is a sequence of "KEY: value" lines in a fixed order:
//
//	BACKUP STATUS FORMAT: 1
//	STATUS: in progress | completed | failed
//	START TIME: 2026-11-25 09:18:00 UTC
//	PID: 1234
//	HOST: hostname
//	BOOT ID: 6c1b3f0e-...              (Linux, each optional: the boot and the
//	PID NAMESPACE: pid:[4026531836]       PID namespace PID is numbered in, and
//	START TICKS: 81234                    (patch 0004) when PID started, in clock
//	                                      ticks since boot, /proc/PID/stat field 22)
//	LABEL: pg_basebackup base backup
//	PROGRAM VERSION: pg_basebackup (PostgreSQL) 18.6
//	FORMAT: plain | tar                (or TARGET: server:/path with --target)
//	WAL METHOD: stream | fetch | none
//	SYNC: on | off
//	UPDATE INTERVAL: 5                 (patch 0003: seconds between progress rewrites, 0 = none)
//	DIRECTORY: created|existing /path  (patch 0003: zero or more; or "unprintable")
//	START WAL LOCATION: 0/2000028      (these three once the server started the backup)
//	START TIMELINE: 1
//	SYSTEM IDENTIFIER: 7441234567890123456
//	PHASE: receiving data              (patch 0003, these four in progress only:
//	UPDATE TIME: 2026-11-25 09:19:00 UTC   starting, receiving data, waiting for WAL,
//	BYTES RECEIVED: 73728                  syncing, finishing; BYTES TOTAL only if
//	BYTES TOTAL: 37661696                  the server estimated the size)
//	END WAL LOCATION: 0/2000100        (completed only)
//	END TIME: 2026-11-25 09:20:00 UTC  (completed and failed)
//	DURABLE: yes | no                  (completed only; yes only if this run synced every file)
//	REASON: error while ...            (failed only; or "terminated by signal SIGTERM while ...")
//	CHECKSUM: 1A2B3C4D
//
// The lines marked "patch 0003" (progress and directories) come
// together: a file has UPDATE INTERVAL and then, while in progress, PHASE,
// UPDATE TIME and BYTES RECEIVED, or none of them (a file written by the
// first version of the patch). Both read as format 1.
//
// The form proposed for master (patches/threads/status-file) is minimal:
// its first patch writes only BACKUP STATUS FORMAT, STATUS, START TIME,
// PID, HOST, SYNC, and END WAL LOCATION, END TIME, DURABLE or END TIME,
// REASON, and the checksum; its follow-ups add the progress lines, the
// DIRECTORY lines and the Linux identity lines above, in that order. So
// LABEL, PROGRAM VERSION, FORMAT or TARGET and WAL METHOD come together
// or not at all ([Status.Described]), and only a completed file that has
// them must have the start lines. A key that a file does not have is not
// known: the reader never guesses it, and every verdict it supports (the
// state, durability, a failure's reason, whether the writer lives) needs
// none of them. WAL locations are read with the second part unpadded
// ("0/2000028", PostgreSQL 18 and earlier) or padded to eight digits
// ("0/02000028", as a later server reports them); one file uses one form.
//
// The last line is the CRC-32C (Castagnoli) of all preceding bytes, as eight
// upper-case hexadecimal digits. Control characters in values are replaced by
// '?' by the writer; the reader refuses any it finds, C1 controls and the
// Unicode bidirectional controls included.
//
// # Strictness
//
// [Parse] accepts exactly what the writer produces and nothing else: an
// unknown format version, a duplicate, missing or misplaced known key, a
// value of a known key not in its canonical form (STATUS: bogus), a line
// that is not "KEY: value" with a key of upper-case words (A to Z, single
// spaces), a carriage return or other control character (C0, DEL, C1, a
// bidirectional control, a line or paragraph separator), bytes that are
// not UTF-8, a missing or wrong checksum line, or anything after it, is an
// error. So a file that parses as completed is byte for byte what
// [Status.Encode] produces for it, apart from the lines of unknown keys.
// [ReadFile] adds the file-system checks: a size limit ([MaxSize]), a
// regular file only, opened through a handle on its directory without
// following a symlink (a symlink is refused, [ErrSymlink]). A
// [ParseError] quotes what the file holds only to the file's owner, and
// never to root ([ParseError.Withhold]).
//
// # Unknown keys and versions
//
// A line whose key this reader does not know is ignored, wherever it is
// after the first line, and its key recorded in [Status.UnknownKeys]
// (pgbb-status shows them as a note); it must still have the form of a
// line, and the CHECKSUM covers it. The format version on the first line
// changes only when a reader that ignores unknown keys would be misled by
// the new files: a key removed, or the meaning of an existing key or value
// changed. A version this reader does not know ([FormatVersion] is the
// newest) is refused. So a writer may add a key without a new version,
// and this reader still judges its files by the keys it knows.
//
// # Deciding
//
// [Check] reads a status file and returns a [Report] whose [Verdict] maps
// to the exit codes of pgbb-status (see [Verdict.ExitCode]). Whether an
// "in progress" run is still alive is asked of a [Processes]
// implementation; [Procfs] answers from Linux /proc, tests use a fake. A
// missing status file is never judged completed, nor final (the run may
// not have written it yet); a directory given in its place is refused
// ([ErrIsDirectory]). The report names the file's owner, and a file that
// says completed is [CompletedUnconfirmed] unless every directory its
// DIRECTORY lines record is there and is that owner's.
//
// A pid means something only within one PID namespace during one boot.
// The writer records both on Linux (BOOT ID, PID NAMESPACE). With a
// [Processes] that implements [Boots] and [PIDNamespaces], as Procfs does,
// a file of another boot cannot be judged; a pid is judged directly only
// in the writer's namespace; from the host's namespace, the writer in a
// nested one is looked up by namespace and namespace-local pid; any other
// reader cannot tell. A file without those lines is never called dead by a
// reader outside the host's namespace, nor while a pg_basebackup in a
// nested namespace has the recorded pid there and may be the writer.
//
// Whether a live pg_basebackup with the recorded pid is the writer, or a
// later process that reused the pid, is told by when it started. With
// START TICKS (when the writer started, in clock ticks since boot, which
// setting the wall clock does not move), the two are compared exactly, on
// the boot's clock, when the process is in the reader's time namespace:
// another tick is another process. Without them, only START TIME can be
// compared with the process's start on the wall clock as it is now
// (/proc/stat btime moves when the clock is set): a process that started
// no later than START TIME (+ the slack) is taken for the writer, and one
// that started later cannot be told from the writer under a clock set
// forward since, so the check cannot tell; it never says dead for it.
//
// A live run is [Running], or [Stalled] when its process is stopped or, in
// a phase in which the writer rewrites the file every UPDATE INTERVAL
// ([Phase.Heartbeat]), its UPDATE TIME is older than [StallAge];
// [Report.Progress] has the percentage, the rate and the time left.
// [PhasesForward] checks successive samples of one file for the writer's
// promises (phases only forward, nothing after completed or failed).
//
// # Cleaning up
//
// [RemoveIfDead] takes the status file and removes what its run left
// behind: the directories its DIRECTORY lines record, then its temporary
// files (FILE.PID.tmp of the PID it records, and FILE.tmp) and the status
// file, only when the file proves that the run is over and did not
// complete; every check that cannot tell makes it refuse. It removes
// nothing that the owner of the status file could not remove itself,
// works through directory handles (os.Root) opened before the judgement,
// so that a path swapped for a symlink is never followed, and never
// removes a status file that a new run rewrote meanwhile. Run again after
// being killed, it finishes the job.
//
// The key table of each format version lives in one place (see spec.go), so
// that keys can be added without touching the parser's framing or the
// decision logic.
package status
